// Runs the native test executables that the CMake build produces (each CPU kernel against its
// scalar reference on awkward shapes; checkpoint parsing of good and malformed files; recorded
// forwards keyed by model).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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

// CPU paths this machine can run (VITMSN_CPU_ISA is read once per process: one run per path).
const cpuFlags = (() => {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
})();
const has = (flag: string) => new RegExp(`\\b${flag}\\b`).test(cpuFlags);
const isaRuns: Array<[string, Record<string, string>]> = [
  ['scalar', { VITMSN_CPU_ISA: 'scalar' }],
  ...(has('avx2') && has('fma') ? [['avx2', { VITMSN_CPU_ISA: 'avx2' }] as [string, Record<string, string>]] : []),
  ...(has('avx512f') && has('avx512bw') && has('avx512vl') && has('avx512dq')
    ? [['avx512', { VITMSN_CPU_ISA: 'avx512' }], ['avx512, AMX off', { VITMSN_CPU_ISA: 'avx512', VITMSN_CPU_AMX: '0' }]] as Array<[string, Record<string, string>]>
    : []),
];

// Every Backend op on every backend here (the CPU path named, and CUDA in each dtype where a GPU
// is usable) against the scalar references, on awkward shapes.
describe.each(isaRuns)('backend ops (%s)', (_name, env) => {
  it('test_engine_backend_ops', async () => {
    const { stdout } = await run(exe('test_engine_backend_ops'), [], { env: { ...process.env, ...env }, maxBuffer: 16 << 20, timeout: 600_000 });
    const summary = stdout.trim().split('\n').pop()!;
    expect(summary).toMatch(/^\d+ passed, 0 failed$/);
    expect(Number(summary.split(' ')[0])).toBeGreaterThan(0);
  }, 600_000);
});

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
