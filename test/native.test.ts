// Runs the native test executables that the CMake build produces (each CPU kernel against its
// scalar reference on awkward shapes; every Backend op per CPU path; checkpoint parsing of good and
// malformed files; the Pillow resize; the restricted unpickler; recorded forwards keyed by model).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backends } from '../lib/index';
import { goldenDir } from './support/goldens';
import { runNativeTest } from './support/native-tests';

const cudaCompiled = backends().some((b) => b.name === 'cuda' && b.compiled);

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
    ? ([
        ['avx512', { VITMSN_CPU_ISA: 'avx512', VITMSN_CPU_AMX: '1' }],
        ['avx512, AMX off', { VITMSN_CPU_ISA: 'avx512', VITMSN_CPU_AMX: '0' }],
      ] as Array<[string, Record<string, string>]>)
    : []),
];

// Every Backend op on every backend here (the CPU path named, and CUDA in each dtype where a GPU
// is usable) against the scalar references, on awkward shapes.
describe.each(isaRuns)('backend ops (%s)', (_name, env) => {
  it('test_engine_backend_ops', async () => {
    const stdout = await runNativeTest('test_engine_backend_ops', [], env);
    // The bf16 GEMMs ran on the kernel asked for: AMX tiles where the CPU has them, unless turned off.
    const cpuLine = stdout.split('\n').find((l) => l.startsWith('backend cpu bf16 weights')) ?? '';
    if (env.VITMSN_CPU_AMX === '0' || env.VITMSN_CPU_ISA !== 'avx512') expect(cpuLine).not.toMatch(/AMX/);
    // (both avx512 runs set VITMSN_CPU_AMX, so a value in the outer environment cannot hide either)
    else if (has('amx_bf16') && has('amx_tile')) expect(cpuLine).toMatch(/bfloat16 via AMX tiles/);
  }, 600_000);
});

// The int8 GEMM on every path this CPU has (one process runs them all): integer sums bit for bit
// against the scalar reference, the float epilogue within 1e-6.
describe('int8 GEMM paths', () => {
  it('test_int8_gemm', async () => {
    const stdout = await runNativeTest('test_int8_gemm', [], {}, 26);
    expect(stdout).toMatch(/^PATH {2}int8\[scalar\]$/m);
    if (has('avx512f') && has('avx512_vnni')) expect(stdout).toMatch(/^PATH {2}int8\[avx512_vnni\]$/m);
    if (has('amx_int8') && has('amx_tile')) expect(stdout).toMatch(/^PATH {2}int8\[AMX tiles\]$/m);
  }, 600_000);
});

describe('native tests', () => {
  it.each([
    ['test_cpu_ops', []],
    // The fast Pillow resize against its per-pixel reference, every filter and channel count;
    // convert('RGB'), normalisation, pooling, softmax; bad images become ERR_IMAGE_INVALID.
    ['test_engine_preprocess', [], 200],
    // The zip reader and restricted unpickler against hostile archives and pickles.
    ['test_engine_pytorch_bin', [], 50],
    ['test_checkpoint', [path.join(goldenDir('tiny-s8'), 'model.safetensors')]],
    ['test_graph_cache', []],
    ['test_engine_host_memory', []],
    // Big host↔device copies through two pinned slots: the ordering rules on a link whose
    // transfers complete at random times (the CUDA backend's link is this one's real counterpart).
    ['test_engine_staged_copy', [], 200],
    // The linear probe's solver: gradient vs finite differences on awkward shapes, thread-count independence.
    ['test_engine_logreg', []],
    // Two checkpoints with one input shape on one recording backend: recordings (forward and the
    // embed path) keyed by model, shape, outputs and normalisation constants.
    ['test_engine_recorded', [goldenDir('tiny-s8'), goldenDir('tiny-mask')]],
    // Large forwards in parts with pipelined transfers (the CUDA copy stream's protocol), bit-equal.
    ['test_engine_pipelined', [goldenDir('tiny-s8'), goldenDir('tiny-cls')]],
    // Built whenever the CUDA part is (nvcc found; always in CI); absent from a CPU-only build.
    ...(cudaCompiled ? [['test_cuda_library_loaders', []]] : []),
  ] as Array<[string, string[], number?]>)(
    '%s',
    async (name, args, minPassed) => {
      const stdout = await runNativeTest(name, args, {}, minPassed);
      // The AMX bf16 attention kernel ran (not skipped) where the CPU has AMX bf16.
      if (name === 'test_cpu_ops' && has('amx_bf16') && has('amx_tile') && has('avx512_bf16')) {
        expect(stdout).toMatch(/^PATH {2}attention\[AMX bf16\]$/m);
      }
    },
    600_000,
  );
});
