/**
 * A call's cancellation: the caller's AbortSignal, a `timeoutMs` deadline, or both. The deadline's
 * timer is cleared as soon as the call settles (no timer outlives its call).
 */
import { invalidParameter, positiveNumber } from './check';

export interface CallSignal {
  /** Aborts when either the caller's signal or the deadline does; undefined when neither is given. */
  signal: AbortSignal | undefined;
  dispose(): void;
}

export function callSignal(signal: unknown, timeoutMs: unknown): CallSignal {
  if (signal !== undefined && !(signal instanceof AbortSignal)) invalidParameter('signal', 'an AbortSignal', signal);
  const callerSignal = signal as AbortSignal | undefined;
  if (timeoutMs === undefined) return { signal: callerSignal, dispose: () => undefined };
  const ms = positiveNumber(timeoutMs, 'timeoutMs');
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new DOMException(`the call took longer than timeoutMs (${ms} ms)`, 'TimeoutError')),
    ms,
  );
  return {
    signal: callerSignal ? AbortSignal.any([callerSignal, deadline.signal]) : deadline.signal,
    dispose: () => clearTimeout(timer),
  };
}
