// Runs native/tests/test_engine_preprocess (built by CMake): the fast Pillow resize against its
// per-pixel scalar reference on awkward shapes, every filter and channel count; convert('RGB'),
// the normalisation, pooling and softmax; bad images become ERR_IMAGE_INVALID.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);
const buildDir = path.join(__dirname, '..', 'build-cmake');

it('test_engine_preprocess', async () => {
  const exe = [path.join(buildDir, 'test_engine_preprocess'), path.join(buildDir, 'Release', 'test_engine_preprocess')].find(existsSync);
  if (!exe) throw new Error(`test_engine_preprocess not built: run \`npm run build:native\` first (looked in ${buildDir})`);
  const { stdout } = await run(exe, [], { maxBuffer: 16 << 20, timeout: 600_000 });
  const summary = stdout.trim().split('\n').pop()!;
  expect(summary).toMatch(/^\d+ passed, 0 failed$/);
  expect(Number(summary.split(' ')[0])).toBeGreaterThan(200);
});
