/**
 * SIGTERM / SIGINT: stop accepting (readyz 503, new requests 503, the listener closed), finish the
 * requests in progress, dispose the model, exit 0. A second signal, or `timeoutMs` passing, exits 1.
 */
import type { FastifyInstance } from 'fastify';

export interface SignalOptions {
  signals?: NodeJS.Signals[];
  /** Most time the drain may take before the process exits anyway (status 1). Default 30 s. */
  timeoutMs?: number;
  log?: (line: string) => void;
  exit?: (code: number) => void;
}

/** Installs the handlers; returns a function that removes them. */
export function installSignalHandlers(app: FastifyInstance, options: SignalOptions = {}): () => void {
  const {
    signals = ['SIGTERM', 'SIGINT'],
    timeoutMs = 30_000,
    log = () => undefined,
    exit = (code) => process.exit(code),
  } = options;
  let started = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) {
      log(`${signal} again: exiting without waiting`);
      exit(1);
      return;
    }
    started = true;
    log(`${signal}: draining (finishing requests in progress)`);
    const timer = setTimeout(() => {
      log(`drain did not finish in ${timeoutMs} ms: exiting`);
      exit(1);
    }, timeoutMs);
    timer.unref();
    app.vitmsn.drain().then(
      () => {
        clearTimeout(timer);
        log('drained: exiting');
        exit(0);
      },
      (e) => {
        clearTimeout(timer);
        log(`drain failed: ${(e as Error)?.message ?? e}`);
        exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.removeListener(s, onSignal);
  };
}
