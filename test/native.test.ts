// Runs the native test executables that the CMake build produces (each CPU kernel against its
// scalar reference on awkward shapes; checkpoint parsing of good and malformed files; recorded
// forwards keyed by model).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { backends } from '../lib/index';
import { goldenDir } from './support/goldens';

const run = promisify(execFile);
const cudaCompiled = backends().some((b) => b.name === 'cuda' && b.compiled);
const buildDir = path.join(__dirname, '..', 'build-cmake');

function exe(name: string): string {
  for (const p of [path.join(buildDir, name), path.join(buildDir, 'Release', name)]) if (existsSync(p)) return p;
  throw new Error(`${name} not built: run \`npm run build:native\` first (looked in ${buildDir})`);
}

describe('native tests', () => {
  it.each([
    ['test_cpu_ops', []],
    ['test_checkpoint', [path.join(goldenDir('tiny-s8'), 'model.safetensors')]],
    ['test_graph_cache', []],
    ['test_engine_host_memory', []],
    // The linear probe's solver: gradient vs finite differences on awkward shapes, thread-count independence.
    ['test_engine_logreg', []],
    // Two checkpoints with one input shape on one recording backend: recordings keyed by model.
    ['test_engine_recorded', [goldenDir('tiny-s8'), goldenDir('tiny-mask')]],
    // Built whenever the CUDA part is (nvcc found; always in CI); absent from a CPU-only build.
    ...(cudaCompiled ? [['test_cublaslt_loader', []]] : []),
  ])('%s', async (name, args) => {
    const { stdout } = await run(exe(name), args as string[], { maxBuffer: 16 << 20, timeout: 600_000 });
    const summary = stdout.trim().split('\n').pop()!;
    expect(summary).toMatch(/^\d+ passed, 0 failed$/);
    expect(Number(summary.split(' ')[0])).toBeGreaterThan(0);
  });
});
