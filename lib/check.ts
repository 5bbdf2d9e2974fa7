/**
 * The one check module: every argument and option check of the public API throws through here, so
 * a wrong value is reported the same way everywhere — a {@link VitMsnError} with a stable code and
 * a message that names the parameter, what it must be, and what was received (printed as
 * JavaScript would print it, see formatValue). The engine re-checks nothing the caller can get
 * wrong: its own checks are internal asserts (ERR_INTERNAL). No tensor math happens here.
 */
import { isDetached } from './buffers';
import { VitMsnError } from './errors';
import { formatValue } from './format-value';

/** Throws ERR_INVALID_ARGUMENT with `message`. */
export function invalid(message: string): never {
  throw new VitMsnError('ERR_INVALID_ARGUMENT', message);
}

/** Throws ERR_INVALID_ARGUMENT: "`name` must be `expected`, got `actual`". */
export function invalidParameter(name: string, expected: string, actual: unknown): never {
  invalid(`${name} must be ${expected}, got ${formatValue(actual)}`);
}

/** Throws ERR_SHAPE_MISMATCH with `message`. */
export function shapeMismatch(message: string): never {
  throw new VitMsnError('ERR_SHAPE_MISMATCH', message);
}

/** Throws ERR_CONFIG_INVALID, prefixed with the file it concerns. */
export function configInvalid(file: string, message: string): never {
  throw new VitMsnError('ERR_CONFIG_INVALID', `${file}: ${message}`);
}

/** 'a', 'b' or 'c' — how a message lists the allowed values. */
export function alternatives(values: readonly unknown[]): string {
  const shown = values.map((v) => (typeof v === 'string' ? `'${v}'` : formatValue(v)));
  return shown.length < 2 ? shown.join('') : `${shown.slice(0, -1).join(', ')} or ${shown[shown.length - 1]}`;
}

/**
 * A call's options object: undefined → {}, anything but an object → error, and every key must be
 * one of `allowed` (a misspelt option is an error, not silently ignored).
 */
export function checkOptions(options: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    invalid(`${what} options must be an object, got ${formatValue(options)}`);
  }
  for (const k of Object.keys(options)) {
    if (!allowed.includes(k)) invalid(`unknown ${what} option "${k}" (known: ${allowed.join(', ')})`);
  }
  return options as Record<string, unknown>;
}

/** A safe integer in [min, max] (max defaults to unbounded); `fallback` when undefined and given. */
export function integer(
  value: unknown,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
  fallback?: number,
): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER
        ? min === 1
          ? 'a positive integer'
          : min === 0
            ? 'a non-negative integer'
            : `an integer ≥ ${min}`
        : `an integer from ${min} to ${max}`;
    invalidParameter(name, range, value);
  }
  return value;
}

/** A finite number > 0; `fallback` when undefined and given. */
export function positiveNumber(value: unknown, name: string, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    invalidParameter(name, 'a positive number', value);
  return value;
}

/** A boolean; `fallback` when undefined. */
export function boolean(value: unknown, name: string, fallback = false): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') invalidParameter(name, 'a boolean', value);
  return value;
}

/** A non-empty string; `fallback` when undefined and given. */
export function nonEmptyString(value: unknown, name: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || value === '') invalidParameter(name, 'a non-empty string', value);
  return value;
}

/** One of `allowed`; `fallback` when undefined and given. */
export function oneOf<T>(value: unknown, name: string, allowed: readonly T[], fallback?: T): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (!allowed.includes(value as T)) invalidParameter(name, alternatives(allowed), value);
  return value as T;
}

/** A function, or undefined. */
export function optionalFunction(value: unknown, name: string): void {
  if (value !== undefined && typeof value !== 'function') invalidParameter(name, 'a function', value);
}

/** Refuses a view whose ArrayBuffer was transferred (its length reads 0 and its data is gone). */
export function notDetached(view: ArrayBufferView, name: string): void {
  if (isDetached(view))
    invalid(`${name} is backed by a detached ArrayBuffer (it was transferred); pass the data itself`);
}

/** The constructor name of an object (e.g. 'Float64Array'), else its type: for "must be X, got Y". */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'object';
}
