// The out-of-memory guard sizes itself from what the process can have: in a container limited to
// 512 MiB, a forward whose outputs alone need gigabytes fails with ERR_OUT_OF_MEMORY (before, the
// kernel killed the process), and encode() with batchSize 4096 runs in batches that fit and gives
// the same embeddings. The child process runs in a real memory cgroup (test/support/cgroup.ts).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index';
import { memoryCgroup } from './support/cgroup';

import { tinyModelFolder } from './support/real-models';

const LIMIT = 512 * 1024 * 1024;
const cg = memoryCgroup(LIMIT);
if ('reason' in cg) console.log(`[memory-limit.test] skipped: ${cg.reason}`);
const tmp = mkdtempSync(path.join(tmpdir(), 'vitmsn-memlimit-'));
afterAll(() => {
  if (!('reason' in cg)) cg.remove();
  rmSync(tmp, { recursive: true, force: true });
});

// tiny-s8 with a preprocessor that resizes to 256×256: 1025 tokens, about 4 MB per image in a forward.
const model = tinyModelFolder(path.join(tmp, 'model'), 'tiny-s8', 256);
const N_IMAGES = 300;
const CHILD = `
  const v = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'index.js'))});
  const images = ${imagesSource()};
  (async () => {
    const m = await v.loadModel(${JSON.stringify(model)}, { device: 'cpu', threads: 1 });
    const out = {};
    // 1024×1024 → 16385 tokens: attentions of 2 layers × 4 heads × 16385² floats ≈ 8.6 GB.
    const x = new Float32Array(3 * 1024 * 1024);
    try {
      await m.forward(x, [1, 3, 1024, 1024], { interpolatePosEncoding: true, outputAttentions: true });
      out.forward = 'succeeded';
    } catch (e) {
      out.forward = e.code + ': ' + e.message;
    }
    const r = await m.encode(images, { batchSize: 4096, interpolatePosEncoding: true });
    out.shape = r.shape;
    out.data = Buffer.from(r.data.buffer).toString('base64');
    console.log(JSON.stringify(out));
  })().catch((e) => { console.error(e); process.exit(1); });`;

function imagesSource(): string {
  return `Array.from({ length: ${N_IMAGES} }, (_, k) => ({ data: new Uint8Array(48 * 40 * 3).map((_, i) => (i * 7 + k * 31) % 256), width: 48, height: 40, channels: 3 }))`;
}

describe.skipIf('reason' in cg)('in a 512 MiB memory cgroup', () => {
  it('a forward too big for the container fails with ERR_OUT_OF_MEMORY; encode(batchSize: 4096) runs in batches that fit', async () => {
    const dir = (cg as { dir: string }).dir;
    const r = spawnSync(
      '/bin/sh',
      ['-c', `echo $$ > "${dir}/cgroup.procs" && exec "${process.execPath}" -e "$CHILD"`],
      {
        env: { ...process.env, CHILD },
        encoding: 'utf8',
        timeout: 240_000,
        maxBuffer: 64 << 20,
      },
    );
    expect(r.signal, `child killed (by the kernel's OOM killer?): ${r.stderr}`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { forward: string; shape: number[]; data: string };
    expect(out.forward).toMatch(/^ERR_OUT_OF_MEMORY: .*GiB/);
    // Outside the container, in batches of 16: the same embeddings.
    const m = await loadModel(model, { device: 'cpu', threads: 1 });
    const images = eval(imagesSource());
    const want = await m.encode(images, { batchSize: 16, interpolatePosEncoding: true });
    await m.dispose();
    expect(out.shape).toEqual(want.shape);
    const got = new Float32Array(Buffer.from(out.data, 'base64').buffer.slice(0));
    let num = 0,
      den = 0;
    for (let i = 0; i < got.length; i++) ((num += (got[i] - want.data[i]) ** 2), (den += want.data[i] ** 2));
    expect(Math.sqrt(num / den)).toBeLessThanOrEqual(1e-6);
  }, 300_000);
});
