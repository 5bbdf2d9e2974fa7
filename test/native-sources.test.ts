// Rules about the native sources that no compiler checks.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const nativeDir = path.join(__dirname, '..', 'native');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(cc|h|inc|cu|cuh)$/.test(e.name) ? [p] : [];
  });
}

// The code without comments and string literals, so that prose cannot trip a rule.
function code(file: string): string {
  return readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/"(?:[^"\\\n]|\\.)*"/g, '""');
}

describe('native sources', () => {
  // Whether a job is big enough for the workers is decided once, by ThreadPool::parallel_for's work
  // argument against kMinParallelWork (native/cpu/thread_pool.h). A parallel_for call with a serial
  // branch beside it (`if (small) body(0, n); else pool.parallel_for(n, body);`) is a second copy
  // of that decision, with its own threshold.
  it('run small work serially in one place: no parallel_for with a serial branch beside it', () => {
    const offenders: string[] = [];
    for (const file of sources(nativeDir)) {
      const text = code(file);
      const asElse = /\belse\s*\{?\s*[\w.>()*-]*parallel_for\s*\(/.test(text);
      const asThen = /parallel_for\s*\([^;]*\);\s*\}?\s*else\b/.test(text);
      if (asElse || asThen) offenders.push(path.relative(nativeDir, file));
    }
    expect(offenders).toEqual([]);
  });

  it('the rule above sees the pattern it forbids', () => {
    const fixture = 'if (n < (1 << 15)) {\n  body(0, n);\n} else {\n  pool.parallel_for(n, body);\n}\n';
    expect(/\belse\s*\{?\s*[\w.>()*-]*parallel_for\s*\(/.test(fixture)).toBe(true);
    const flipped = 'if (big) {\n  pool->parallel_for(n, body);\n} else {\n  body(0, n);\n}\n';
    expect(/parallel_for\s*\([^;]*\);\s*\}?\s*else\b/.test(flipped)).toBe(true);
  });
});
