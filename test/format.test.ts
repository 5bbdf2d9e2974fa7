// npm test checks formatting: Prettier for TS/JS, clang-format for native/ (scripts/format.mjs
// lists the files and the tools). A file written by hand without `npm run format` fails here.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = path.join(__dirname, '..');

it('every source file is formatted (npm run format:check)', async () => {
  const r = await promisify(execFile)(process.execPath, [path.join(root, 'scripts', 'format.mjs')], {
    cwd: root,
    maxBuffer: 16 << 20,
  }).then(
    (ok) => ({ code: 0, out: ok.stdout + ok.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );
  expect(r.out).toMatch(/format: \d+ TS\/JS and \d+ C\+\+\/CUDA files formatted/);
  expect(r.code).toBe(0);
}, 120_000);
