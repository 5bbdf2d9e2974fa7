/**
 * The endpoints: POST /v1/embeddings, POST /v1/classify, GET /healthz, GET /readyz, GET /metrics.
 */
import os from 'node:os';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Limits } from './limits';
import type { ServerMetrics } from './metrics';
import type { EmbedService } from './port';
import { readImages, readOptions, wantsOctetStream, type Endpoint } from './inputs';
import { httpError, type HttpError } from './http-errors';
import { ServeError } from './serve-error';

export interface RouteContext {
  /** The service once loaded (undefined while loading). */
  service(): EmbedService | undefined;
  draining(): boolean;
  limits: Limits;
  metrics: ServerMetrics;
}

/** Sends an error answer (and counts it). */
export function sendError(request: FastifyRequest, reply: FastifyReply, metrics: ServerMetrics, h: HttpError) {
  metrics.error(routeOf(request), h.code);
  if (h.retryAfter !== undefined) reply.header('retry-after', String(h.retryAfter));
  return reply
    .code(h.status)
    .type('application/json; charset=utf-8')
    .send({ error: { code: h.code, message: h.message } });
}

export function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unmatched';
}

/** The reason a request's signal is aborted with when its client goes away. */
function clientClosed(): DOMException {
  return new DOMException('the client closed the connection', 'AbortError');
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

function float32le(data: Float32Array): Buffer {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return buf;
  const out = Buffer.from(buf);
  out.swap32();
  return out;
}

export function registerRoutes(app: FastifyInstance, ctx: RouteContext) {
  const { limits, metrics } = ctx;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (request, reply) => {
    const s = ctx.service();
    if (ctx.draining())
      return sendError(request, reply, metrics, httpError('ERR_DRAINING', 'the server is shutting down'));
    if (!s) return sendError(request, reply, metrics, httpError('ERR_NOT_READY', 'the model is loading'));
    return { status: 'ready', model: s.info.name };
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.text();
    return reply.type(metrics.contentType).send(text);
  });

  const inference = (endpoint: Endpoint) => async (request: FastifyRequest, reply: FastifyReply) => {
    const service = ctx.service();
    if (!service) throw new ServeError('ERR_NOT_READY', 'the model is loading; retry later');
    // The client going away cancels the request's work (it leaves the model's queue).
    const ac = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) ac.abort(clientClosed());
    };
    reply.raw.once('close', onClose);
    try {
      const { images, fields } = await readImages(request, endpoint, limits);
      const o = readOptions(endpoint, request.query, fields);
      const call = { signal: ac.signal, timeoutMs: limits.timeoutMs || undefined, maxPixels: limits.maxPixels };
      if (endpoint === 'classify') {
        const res = await service.classify(images, { ...call, topK: o.topK });
        return { model: service.info.name, data: res.map((predictions, index) => ({ index, predictions })) };
      }
      const { data, shape } = await service.encode(images, { ...call, pooling: o.pooling, normalize: o.normalize });
      const [N, D] = shape;
      if (wantsOctetStream(request.headers.accept)) {
        return reply
          .type('application/octet-stream')
          .header('x-shape', `${N},${D}`)
          .header('x-dtype', 'float32-le')
          .send(float32le(data));
      }
      const rows = new Array(N);
      for (let i = 0; i < N; i++) rows[i] = { index: i, embedding: Array.from(data.subarray(i * D, (i + 1) * D)) };
      return { model: service.info.name, dim: D, data: rows };
    } catch (e) {
      if (ac.signal.aborted && (ac.signal.reason as Error)?.name === 'AbortError') {
        // Nobody to answer: count it (the request itself is counted as 499 when its socket closes).
        metrics.error(routeOf(request), 'ERR_CLIENT_CLOSED');
        reply.hijack();
        reply.raw.destroy();
        return reply;
      }
      throw e;
    } finally {
      reply.raw.removeListener('close', onClose);
    }
  };

  app.post('/v1/embeddings', { config: { inference: true } }, inference('embeddings'));
  app.post('/v1/classify', { config: { inference: true } }, inference('classify'));
}
