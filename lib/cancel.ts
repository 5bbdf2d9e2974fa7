/**
 * A call's cancellation: the caller's AbortSignal, a `timeoutMs` deadline, or both. The deadline's
 * timer is cleared as soon as the call settles (no timer outlives its call).
 */
import { VitMsnError } from './errors';
import { formatValue } from './format-value';

export interface CallSignal {
  /** Aborts when either the caller's signal or the deadline does; undefined when neither is given. */
  signal: AbortSignal | undefined;
  dispose(): void;
}

export function callSignal(signal: unknown, timeoutMs: unknown): CallSignal {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new VitMsnError('ERR_INVALID_ARGUMENT', `signal must be an AbortSignal, got ${formatValue(signal)}`);
  }
  if (timeoutMs === undefined) return { signal, dispose: () => undefined };
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new VitMsnError('ERR_INVALID_ARGUMENT', `timeoutMs must be a positive number, got ${formatValue(timeoutMs)}`);
  }
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new DOMException(`the call took longer than timeoutMs (${timeoutMs} ms)`, 'TimeoutError')), timeoutMs);
  return {
    signal: signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal,
    dispose: () => clearTimeout(timer),
  };
}
