/**
 * A received value as it should appear in an error message. JSON.stringify, used before, prints
 * NaN and ±Infinity as "null" and drops undefined, so "width must be …, got null" blamed a value
 * the caller never passed.
 */

const MAX_LENGTH = 100;

/** `NaN`, `-0`, `"text"`, `[1, NaN]`, `{"a": 1}`, `undefined`, `a Float32Array of length 3`, … (at most ~100 characters). */
export function formatValue(value: unknown): string {
  const s = format(value, 0);
  return s.length > MAX_LENGTH ? `${s.slice(0, MAX_LENGTH)}…` : s;
}

function format(v: unknown, depth: number): string {
  switch (typeof v) {
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v);
    case 'bigint':
      return `${v}n`;
    case 'string':
      return JSON.stringify(v.length > MAX_LENGTH ? v.slice(0, MAX_LENGTH) : v);
    case 'undefined':
    case 'boolean':
    case 'symbol':
      return String(v);
    case 'function':
      return 'a function';
  }
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) {
    const n = (v as { length?: number }).length ?? (v as ArrayBufferView).byteLength;
    return `a ${v.constructor.name} of length ${n}`;
  }
  if (depth > 1) return Array.isArray(v) ? '[…]' : '{…}';
  // Only the first items: enough to recognise the value, without walking a huge array.
  if (Array.isArray(v))
    return `[${v
      .slice(0, 16)
      .map((x) => format(x, depth + 1))
      .join(', ')}${v.length > 16 ? ', …' : ''}]`;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return `a ${(v as object).constructor?.name ?? 'object'}`;
  const entries = Object.entries(v as object).slice(0, 16);
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}: ${format(x, depth + 1)}`).join(', ')}}`;
}
