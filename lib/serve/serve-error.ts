/**
 * Errors the server makes itself (not the library's VitMsnError): an HTTP-level `code` string such
 * as 'ERR_OVERLOADED', 'ERR_TOO_MANY_IMAGES' or 'ERR_DRAINING' (see http-errors.ts for the list and
 * their statuses).
 */
export class ServeError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ServeError';
    this.code = code;
  }
}

/** `signal` and a `timeoutMs` deadline as one signal (either may be absent). */
export function withDeadline(signal: AbortSignal | undefined, timeoutMs: number | undefined): AbortSignal | undefined {
  if (timeoutMs === undefined || timeoutMs <= 0) return signal;
  const timeout = AbortSignal.timeout(timeoutMs);
  if (!signal) return timeout;
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([signal, timeout]);
  const both = new AbortController();
  const fwd = (s: AbortSignal) => () => both.abort(s.reason);
  if (signal.aborted) both.abort(signal.reason);
  signal.addEventListener('abort', fwd(signal), { once: true });
  timeout.addEventListener('abort', fwd(timeout), { once: true });
  return both.signal;
}
