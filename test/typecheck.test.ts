// npm test type-checks more than the library: the tests (strict, like lib/) and the benchmark
// scripts (JavaScript checked against the library's types), so an API change that breaks a test
// helper or a bench fails here rather than when someone next runs it.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = path.join(__dirname, '..');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

it.each(['tsconfig.check.json', 'tsconfig.check-js.json'])(
  'tsc -p %s',
  async (config) => {
    const r = await promisify(execFile)(process.execPath, [tsc, '-p', config], { cwd: root, maxBuffer: 16 << 20 }).then(
      () => ({ code: 0, out: '' }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  },
  180_000,
);
