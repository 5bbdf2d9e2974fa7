/**
 * Every error an answer can carry, as `{ "error": { "code", "message" } }` with its HTTP status.
 * Library codes (VitMsnError) keep their names; the server's own codes are listed in SERVER_CODES.
 */
import { ServeError } from './serve-error';
import type { ErrorCode } from '../errors';

/** Codes the server itself uses (never thrown by the library). */
export const SERVER_CODES = {
  ERR_BODY_TOO_LARGE: 413, // the request body is over --max-body-bytes
  ERR_TOO_MANY_IMAGES: 413, // more images than --max-images in one request
  ERR_UNSUPPORTED_MEDIA_TYPE: 415, // a Content-Type the endpoint does not take
  ERR_OVERLOADED: 429, // the queue is full (also the library's code once it has backpressure), or --max-concurrent requests are running
  ERR_CLIENT_CLOSED: 499, // the client went away; its work was cancelled (never seen by that client)
  ERR_NOT_READY: 503, // the model is still loading
  ERR_DRAINING: 503, // the server is shutting down
  ERR_UNDER_PRESSURE: 503, // event-loop delay or memory over the configured limits
  ERR_TIMEOUT: 504, // --timeout-ms passed before the model answered
  ERR_NOT_FOUND: 404, // no such route
} as const;

/** Library codes that a client can cause or should see, and the status they get; others are 500. */
const LIBRARY_STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARGUMENT: 400,
  ERR_SHAPE_MISMATCH: 400,
  ERR_IMAGE_INVALID: 400,
  ERR_IMAGE_NOT_FOUND: 400,
  ERR_IMAGE_TOO_LARGE: 413,
  ERR_IMAGE_UNSUPPORTED: 415,
  ERR_NO_CLASSIFIER: 501,
  ERR_DISPOSED: 503,
  ERR_OUT_OF_MEMORY: 503,
  ERR_INTERNAL: 500,
};

/** Statuses that tell the client to come back later. */
const RETRY_AFTER_S: Record<number, number> = { 429: 1, 503: 5 };

export interface HttpError {
  status: number;
  code: string;
  message: string;
  /** Seconds, for 429 and 503. */
  retryAfter?: number;
}

export function httpError(code: string, message: string, status?: number): HttpError {
  const s = status ?? (SERVER_CODES as Record<string, number>)[code] ?? LIBRARY_STATUS[code as ErrorCode] ?? 500;
  return { status: s, code, message, retryAfter: RETRY_AFTER_S[s] };
}

/** Fastify's own errors (body parsing, limits, multipart) by their code. */
const FASTIFY: Record<string, [string, number?]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ['ERR_BODY_TOO_LARGE'],
  FST_REQ_FILE_TOO_LARGE: ['ERR_BODY_TOO_LARGE'],
  FST_PARTS_LIMIT: ['ERR_TOO_MANY_IMAGES'],
  FST_FILES_LIMIT: ['ERR_TOO_MANY_IMAGES'],
  FST_FIELDS_LIMIT: ['ERR_INVALID_ARGUMENT', 400],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['ERR_UNSUPPORTED_MEDIA_TYPE'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['ERR_INVALID_ARGUMENT', 400],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['ERR_INVALID_ARGUMENT', 400],
  FST_ERR_CTP_INVALID_JSON_BODY: ['ERR_INVALID_ARGUMENT', 400],
  FST_ERR_VALIDATION: ['ERR_INVALID_ARGUMENT', 400],
  FST_INVALID_MULTIPART_CONTENT_TYPE: ['ERR_UNSUPPORTED_MEDIA_TYPE'],
  FST_PROTO_VIOLATION: ['ERR_INVALID_ARGUMENT', 400],
  FST_UNDER_PRESSURE: ['ERR_UNDER_PRESSURE'],
};

/** Any thrown value → the answer to send. Never throws. */
export function toHttpError(e: unknown): HttpError {
  const err = e as { code?: unknown; name?: unknown; message?: unknown; statusCode?: unknown } | null | undefined;
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (err?.name === 'TimeoutError')
    return httpError('ERR_TIMEOUT', "the request did not finish within the server's deadline (--timeout-ms)");
  if (err?.name === 'AbortError') return httpError('ERR_CLIENT_CLOSED', 'the client closed the connection');
  const code = typeof err?.code === 'string' ? err.code : undefined;
  if (e instanceof ServeError || (code && code in SERVER_CODES)) return httpError(code!, message);
  if (code && code in LIBRARY_STATUS) return httpError(code, message);
  if (code && code in FASTIFY) {
    const [c, s] = FASTIFY[code];
    return httpError(c, message, s);
  }
  if (code?.startsWith('ERR_')) return httpError(code, message, 500); // a library code with no special status (config, weights, …)
  // Any other 4xx fastify or Node raised (malformed request): keep its status.
  const status =
    typeof err?.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  return status === 500 ? httpError('ERR_INTERNAL', message, 500) : httpError('ERR_INVALID_ARGUMENT', message, status);
}
