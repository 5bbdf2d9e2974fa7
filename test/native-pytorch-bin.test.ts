// Runs native/tests/test_engine_pytorch_bin (built by CMake): the zip reader and restricted
// unpickler against hostile archives and pickles, truncation at every length, flipped bytes.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const buildDir = path.join(__dirname, '..', 'build-cmake');

it('test_engine_pytorch_bin', async () => {
  const exe = [path.join(buildDir, 'test_engine_pytorch_bin'), path.join(buildDir, 'Release', 'test_engine_pytorch_bin')].find(existsSync);
  expect(exe, 'test_engine_pytorch_bin not built: run `npm run build:native`').toBeDefined();
  const { stdout } = await promisify(execFile)(exe!, [], { maxBuffer: 16 << 20, timeout: 600_000 });
  const summary = stdout.trim().split('\n').pop()!;
  expect(summary).toMatch(/^\d+ passed, 0 failed$/);
  expect(Number(summary.split(' ')[0])).toBeGreaterThan(50);
});
