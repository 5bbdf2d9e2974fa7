// Every CPU kernel path end to end: VITMSN_CPU_ISA forces a path for a whole process (it is read
// once, when the first CPU backend is made), so each path runs in a child Node process on the
// built package (dist/), against transformers' float64 goldens. The native kernel tests
// (test_cpu_ops) compare each path with the scalar references op by op; this checks the wiring.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { golden, goldenDir } from './support/goldens';
import { relL2 } from './support/real-models';
import { TOL } from './tolerances';

const DIST = path.join(__dirname, '..', 'dist', 'index.js');
const NAME = 'tiny-cls' as const;

function runChild(env: Record<string, string>, dtype: string) {
  const g = golden(NAME);
  const script = `
    const { loadModel, backends } = require(${JSON.stringify(DIST)});
    const fs = require('node:fs');
    (async () => {
      const px = new Float32Array(JSON.parse(fs.readFileSync(0, 'utf8')));  // first: the parent writes it
      const detail = backends().find((b) => b.name === 'cpu').detail;
      try {
        const m = await loadModel(${JSON.stringify(goldenDir(NAME))}, { device: 'cpu', dtype: ${JSON.stringify(dtype)}, threads: 2 });
        const out = await m.forward(px, ${JSON.stringify(g.pixel_values.shape)});
        await m.dispose();
        console.log(JSON.stringify({ detail, data: Array.from(out.lastHiddenState.data) }));
      } catch (e) {
        console.log(JSON.stringify({ detail, code: e.code, message: e.message }));
      }
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], {
    input: JSON.stringify(Array.from(g.pixel_values.data as Float32Array)),
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  }).toString();
  return { g, res: JSON.parse(out.trim().split('\n').pop()!) };
}

const cpuFlags = (() => {
  try {
    return require('node:fs').readFileSync('/proc/cpuinfo', 'utf8') as string;
  } catch {
    return '';
  }
})();
const has = (flag: string) => new RegExp(`\\b${flag}\\b`).test(cpuFlags);
const paths = [
  { isa: 'scalar', ok: true },
  { isa: 'avx2', ok: has('avx2') && has('fma') },
  { isa: 'avx512', ok: has('avx512f') && has('avx512bw') && has('avx512vl') && has('avx512dq') },
];

describe.each(paths)('VITMSN_CPU_ISA=$isa', ({ isa, ok }) => {
  it.skipIf(!ok)(
    'float32 matches the goldens, bfloat16 stays within its bound',
    () => {
      const f = runChild({ VITMSN_CPU_ISA: isa }, 'float32');
      expect(f.res.detail).toContain(`kernels: ${isa}`);
      expect(relL2(new Float32Array(f.res.data), f.g.last_hidden_state.data as Float32Array)).toBeLessThanOrEqual(
        TOL.f32VsFloat64,
      );
      const b = runChild({ VITMSN_CPU_ISA: isa }, 'bfloat16');
      expect(relL2(new Float32Array(b.res.data), b.g.last_hidden_state.data as Float32Array)).toBeLessThanOrEqual(
        TOL.bf16,
      );
    },
    60_000,
  );
});

describe('forcing a path the CPU lacks', () => {
  it('fails the load with ERR_DEVICE_UNAVAILABLE and says why', () => {
    const missing = !has('avx512f') ? 'avx512' : process.arch === 'arm64' ? 'avx2' : 'neon';
    const { res } = runChild({ VITMSN_CPU_ISA: missing }, 'float32');
    expect(res.code).toBe('ERR_DEVICE_UNAVAILABLE');
    expect(res.message).toMatch(new RegExp(`VITMSN_CPU_ISA=${missing}`));
    expect(res.detail).toMatch(/VITMSN_CPU_ISA/);
  }, 60_000);

  it('an unknown path name is refused too', () => {
    const { res } = runChild({ VITMSN_CPU_ISA: 'sse9' }, 'float32');
    expect(res.code).toBe('ERR_DEVICE_UNAVAILABLE');
  }, 60_000);
});
