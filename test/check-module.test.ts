// One check module: lib/check.ts is where argument errors are made. Its helpers are tested here on
// awkward values, and the sources are searched so that a second `invalid()` / `fail()` helper or a
// hand-made ERR_INVALID_ARGUMENT elsewhere in lib/ fails this test.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { alternatives, boolean, checkOptions, integer, oneOf, positiveNumber } from '../lib/check';
import { VitMsnError } from '../lib/errors';

const lib = path.join(__dirname, '..', 'lib');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : n.endsWith('.ts') ? [p] : [];
  });
}

function thrown(fn: () => unknown): VitMsnError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VitMsnError);
    return e as VitMsnError;
  }
  throw new Error('did not throw');
}

describe('lib/check.ts', () => {
  it('integer: range, fallback, and the value as passed in the message', () => {
    expect(integer(undefined, 'n', 1, 10, 4)).toBe(4);
    expect(integer(10, 'n', 1, 10)).toBe(10);
    for (const bad of [0, 11, 1.5, NaN, '3', null, 2 ** 60]) {
      const e = thrown(() => integer(bad, 'n', 1, 10));
      expect(e.code).toBe('ERR_INVALID_ARGUMENT');
      expect(e.message).toMatch(/^n must be an integer from 1 to 10, got /);
    }
    expect(thrown(() => integer(NaN, 'k', 1)).message).toBe('k must be a positive integer, got NaN');
    expect(thrown(() => integer(-1, 'k', 0)).message).toBe('k must be a non-negative integer, got -1');
    expect(thrown(() => integer(1, 'k', 2)).message).toBe('k must be an integer ≥ 2, got 1');
  });
  it('numbers, booleans, choices', () => {
    expect(positiveNumber(undefined, 't', 0.5)).toBe(0.5);
    for (const bad of [0, -1, Infinity, NaN, '1'])
      expect(thrown(() => positiveNumber(bad, 't')).message).toMatch(/^t must be a positive number/);
    expect(boolean(undefined, 'b')).toBe(false);
    expect(thrown(() => boolean(1, 'b')).message).toBe('b must be a boolean, got 1');
    expect(oneOf(undefined, 'p', ['a', 'b'] as const, 'a')).toBe('a');
    expect(thrown(() => oneOf('c', 'p', ['a', 'b', 'x'])).message).toBe("p must be 'a', 'b' or 'x', got \"c\"");
    expect(alternatives([1, 2])).toBe('1 or 2');
  });
  it('options objects: type and unknown keys', () => {
    expect(checkOptions(undefined, ['a'], 'f')).toEqual({});
    expect(thrown(() => checkOptions(null, ['a'], 'f')).message).toBe('f options must be an object, got null');
    expect(thrown(() => checkOptions([], ['a'], 'f')).message).toMatch(/^f options must be an object/);
    expect(thrown(() => checkOptions({ b: 1 }, ['a'], 'f')).message).toBe('unknown f option "b" (known: a)');
  });
});

describe('no second check module', () => {
  const sources = tsFiles(lib).filter((f) => !f.endsWith(`${path.sep}check.ts`));
  it('argument errors are made only by lib/check.ts', () => {
    for (const f of sources) {
      const text = readFileSync(f, 'utf8');
      const rel = path.relative(lib, f);
      expect(
        text,
        `${rel} makes an ERR_INVALID_ARGUMENT itself: use invalid()/invalidParameter() from check.ts`,
      ).not.toMatch(/new VitMsnError\(\s*'ERR_INVALID_ARGUMENT'/);
      expect(text, `${rel} defines its own invalid()/fail()/checkKeys()`).not.toMatch(
        /function (invalid|fail|checkKeys|checkOptions)\s*\(/,
      );
    }
  });
});
