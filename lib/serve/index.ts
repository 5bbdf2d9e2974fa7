/**
 * `createServer(service, options)`: the HTTP server of `vitmsn serve`, a fastify instance (not
 * listening yet). See routes.ts for the endpoints, limits.ts for the limits, drain.ts for shutdown.
 *
 * @example
 * const service = await loadService('./vit-msn-small', { batching: { maxBatch: 32 } });
 * const app = await createServer(service, { maxImages: 16 });
 * await app.listen({ port: 8080, host: '127.0.0.1' });
 */
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import { concurrencyLimit, registerPressure, resolveLimits, type Limits } from './limits';
import { createMetrics, type ServerMetrics } from './metrics';
import type { EmbedService } from './port';
import { registerRoutes, routeOf, sendError } from './routes';
import { httpError, toHttpError } from './http-errors';
import { ServeError } from './serve-error';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** An inference route: counted by --max-concurrent, shed under pressure, refused while draining. */
    inference?: boolean;
  }
}

export interface ServeOptions extends Partial<Limits> {
  /** fastify's logger option; default false (the CLI logs its own line). */
  logger?: FastifyServerOptions['logger'];
  /** Register prom-client's default process metrics (event-loop lag, RSS, GC). Default true. */
  defaultMetrics?: boolean;
  /** After drain() starts, how long readyz answers 503 while the listener still accepts (ms). Default 0. */
  drainDelayMs?: number;
  /** Dispose the service when the server closes. Default true. */
  disposeOnClose?: boolean;
}

/** What createServer adds to the fastify instance, as `app.vitmsn`. */
export interface ServerControl {
  readonly limits: Limits;
  readonly metrics: ServerMetrics;
  /** Whether drain() has been called. */
  readonly draining: boolean;
  /** The service, once loaded. */
  readonly service: EmbedService | undefined;
  /**
   * Stops taking work: readyz and new requests answer 503, the listener closes, requests in
   * progress finish, then the service is disposed. Resolves when all of that is done.
   */
  drain(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    vitmsn: ServerControl;
  }
}

/**
 * The server for `service` (or a promise of it: until it resolves, readyz and inference answer
 * 503 ERR_NOT_READY; a rejected promise leaves the server not ready).
 */
export async function createServer(
  service: EmbedService | Promise<EmbedService>,
  options: ServeOptions = {},
): Promise<FastifyInstance> {
  const { logger = false, defaultMetrics, drainDelayMs = 0, disposeOnClose = true, ...limitOptions } = options;
  const limits = resolveLimits(limitOptions);
  let ready: EmbedService | undefined;
  if (service instanceof Promise)
    service.then(
      (s) => void (ready = s),
      () => undefined,
    );
  else ready = service;
  let draining = false;
  let drained: Promise<void> | undefined;

  const metrics = createMetrics(() => ready?.stats(), { defaultMetrics });
  const app = Fastify({
    logger,
    bodyLimit: limits.maxBodyBytes,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });

  // Open connections and how many requests each has in progress: at close, idle ones are ended
  // (node's closeIdleConnections misses some after a client aborted a request on another one).
  const sockets = new Map<Socket, number>();
  app.server.on('connection', (socket: Socket) => {
    sockets.set(socket, 0);
    socket.once('close', () => sockets.delete(socket));
  });
  app.addHook('preClose', async () => {
    for (const [socket, active] of sockets) if (active === 0) socket.destroy();
  });

  // Every request is counted when its response closes: 499 when the client left first.
  app.addHook('onRequest', async (request, reply) => {
    const start = process.hrtime.bigint();
    const socket = request.raw.socket;
    if (sockets.has(socket)) sockets.set(socket, sockets.get(socket)! + 1);
    reply.raw.once('close', () => {
      if (sockets.has(socket)) sockets.set(socket, sockets.get(socket)! - 1);
      const status = reply.raw.writableFinished ? reply.statusCode : 499;
      metrics.request(routeOf(request), request.method, status, Number(process.hrtime.bigint() - start) / 1e9);
    });
  });
  app.addHook('onRequest', async (request, reply) => {
    if (draining && request.routeOptions.config?.inference) {
      reply.header('connection', 'close');
      throw new ServeError('ERR_DRAINING', 'the server is shutting down; retry on another instance');
    }
  });
  // While draining, every answer closes its connection, so keep-alive clients let go.
  app.addHook('onSend', async (_request, reply) => {
    if (draining) reply.header('connection', 'close');
  });
  concurrencyLimit(
    app,
    limits,
    () => ready,
    (request, reply, h) => sendError(request, reply, metrics, h),
  );
  await registerPressure(app, limits);

  // Bodies: one raw image, JSON, or multipart/form-data (text/plain is not taken).
  app.removeContentTypeParser('text/plain');
  for (const type of ['application/octet-stream', /^image\/[\w.+-]+$/i]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: limits.maxBodyBytes }, (_req, body, done) =>
      done(null, body),
    );
  }
  await app.register(multipart, {
    limits: {
      fileSize: limits.maxBodyBytes,
      files: limits.maxImages,
      fields: 8,
      fieldSize: 1024,
      parts: limits.maxImages + 8,
      headerPairs: 64,
    },
    throwFileSizeLimit: true,
  });

  app.setErrorHandler((err, request, reply) => {
    const h = toHttpError(err);
    if (h.status >= 500 && h.code === 'ERR_INTERNAL') request.log.error({ err }, 'internal error');
    return sendError(request, reply, metrics, h);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, metrics, httpError('ERR_NOT_FOUND', `no route ${request.method} ${request.url}`)),
  );

  registerRoutes(app, { service: () => ready, draining: () => draining, limits, metrics });

  app.addHook('onClose', async () => {
    draining = true;
    if (!disposeOnClose) return;
    if (ready) await ready.dispose();
    else if (service instanceof Promise)
      service.then(
        (s) => s.dispose(),
        () => undefined,
      ); // still loading: freed when loaded
  });

  const control: ServerControl = {
    limits,
    metrics,
    get draining() {
      return draining;
    },
    get service() {
      return ready;
    },
    drain() {
      if (!drained) {
        draining = true;
        drained = (async () => {
          if (drainDelayMs > 0) await new Promise((r) => setTimeout(r, drainDelayMs));
          await app.close();
        })();
      }
      return drained;
    },
  };
  app.decorate('vitmsn', control);
  return app;
}

export {
  loadService,
  modelService,
  DEFAULT_BATCHING,
  type LoadServiceOptions,
  type ModelServiceOptions,
} from './adapter';
export { DEFAULT_LIMITS, type Limits, type PressureLimits } from './limits';
export { installSignalHandlers } from './drain';
export type {
  EmbedService,
  ServiceStats,
  ServiceInfo,
  ServiceEncodeOptions,
  ServiceClassifyOptions,
  CallOptions,
} from './port';
