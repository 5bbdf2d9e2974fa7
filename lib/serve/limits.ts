/**
 * The server's limits: body size, images per request, pixels per image, concurrent inference
 * requests, a per-request deadline, and load shedding by event-loop delay / memory
 * (@fastify/under-pressure). Defaults are here.
 */
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { httpError, type HttpError } from './http-errors';
import type { EmbedService } from './port';
import { ServeError } from './serve-error';

export interface PressureLimits {
  /** 503 while the event loop lags more than this (ms); 0 = unchecked. Default 1000. */
  maxEventLoopDelay?: number;
  /** 503 while the heap is over this; 0 = unchecked (default). */
  maxHeapUsedBytes?: number;
  /** 503 while the RSS is over this; 0 = unchecked (default). */
  maxRssBytes?: number;
}

export interface Limits {
  /** Largest request body (raw image, all multipart files, or JSON). Default 32 MiB. */
  maxBodyBytes: number;
  /** Most images in one request. Default 64. */
  maxImages: number;
  /** Most pixels per image, checked from its header before decoding (413). Default 40 million. */
  maxPixels: number;
  /** Most inference requests at once (receiving, waiting or running); more get 429. Default 256. */
  maxConcurrent: number;
  /** Deadline per inference request in ms (504); 0 = none (default). */
  timeoutMs: number;
  /** Load shedding (503 with Retry-After); false = off. */
  pressure: PressureLimits | false;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 32 << 20,
  maxImages: 64,
  maxPixels: 40_000_000,
  maxConcurrent: 256,
  timeoutMs: 0,
  pressure: { maxEventLoopDelay: 1000 },
};

function positive(v: unknown, name: string, zeroOk = false): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (zeroOk ? 0 : 1)) {
    throw new ServeError(
      'ERR_INVALID_ARGUMENT',
      `${name} must be a ${zeroOk ? 'non-negative' : 'positive'} integer, got ${String(v)}`,
    );
  }
  return v;
}

export function resolveLimits(o: Partial<Limits> = {}): Limits {
  const l = {
    ...DEFAULT_LIMITS,
    ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
  } as Limits;
  positive(l.maxBodyBytes, 'maxBodyBytes');
  positive(l.maxImages, 'maxImages');
  positive(l.maxPixels, 'maxPixels');
  positive(l.maxConcurrent, 'maxConcurrent');
  positive(l.timeoutMs, 'timeoutMs', true);
  return l;
}

/** Registers load shedding; health, readiness and metrics routes are never shed. */
export async function registerPressure(app: FastifyInstance, limits: Limits) {
  if (!limits.pressure) return;
  const p = limits.pressure;
  await app.register(underPressure, {
    maxEventLoopDelay: p.maxEventLoopDelay ?? 1000,
    maxHeapUsedBytes: p.maxHeapUsedBytes ?? 0,
    maxRssBytes: p.maxRssBytes ?? 0,
    pressureHandler: (req, _reply, type, value) => {
      if (!(req.routeOptions.config as { inference?: boolean } | undefined)?.inference) return undefined; // not shed: continue
      // A rejected promise goes to the error handler: 503 ERR_UNDER_PRESSURE with Retry-After.
      return Promise.reject(
        new ServeError(
          'ERR_UNDER_PRESSURE',
          `the server is under pressure (${String(type)}${value === undefined ? '' : ` ${Math.round(Number(value))}`}); retry later`,
        ),
      );
    },
  });
}

/**
 * Counts inference requests in progress; past maxConcurrent a request is refused (429), and so is
 * one that arrives while the model's queue is already full — before its body is read, and answered
 * here rather than thrown (no stack trace to capture, no error handler), so that an overloaded
 * server sheds load at the least cost per refused request.
 */
export function concurrencyLimit(
  app: FastifyInstance,
  limits: Limits,
  service: () => EmbedService | undefined,
  refuse: (request: FastifyRequest, reply: FastifyReply, h: HttpError) => FastifyReply,
) {
  let active = 0;
  app.addHook('onRequest', async (request, reply) => {
    if (!(request.routeOptions.config as { inference?: boolean } | undefined)?.inference) return;
    if (active >= limits.maxConcurrent) {
      return refuse(
        request,
        reply,
        httpError('ERR_OVERLOADED', `${active} requests are in progress (--max-concurrent ${limits.maxConcurrent})`),
      );
    }
    const q = service()?.queue();
    if (q && q.queuedImages >= q.maxQueue) {
      return refuse(
        request,
        reply,
        httpError(
          'ERR_OVERLOADED',
          `the model's queue is full (${q.queuedImages} images waiting, --max-queue ${q.maxQueue}); retry later`,
        ),
      );
    }
    active++;
    reply.raw.once('close', () => void active--);
  });
  return { active: () => active };
}
