// Image paths are read with a bound: only regular files, at most maxBytes, and the pixel limit is
// checked from the file's first bytes before the rest is read. Special files (a device, a FIFO)
// give a coded error at once instead of an endless read or a read that never returns.
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { runNode } from './support/child';
import { HAS_MKFIFO, makeFifo, settleWithin } from './support/fifo';
import { goldenDir } from './support/goldens';
import { pngWithHeader } from './support/png';
import { expectCode } from './support/expect-code';

const FIX = path.join(__dirname, 'fixtures');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-image-files-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

const settle = <T>(p: Promise<T>) => Promise.allSettled([p]).then(([r]) => r);

let model: Model;
beforeAll(async () => {
  model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu' });
});
afterAll(() => model?.dispose());

const jpegFile = path.join(FIX, 'pil', 'rgb420.jpg');

/** A PNG whose IHDR declares width×height, followed by an IDAT that runs to `size` bytes (a sparse hole). */
function sparsePng(file: string, width: number, height: number, size: number) {
  const head = pngWithHeader(width, height).subarray(0, 8 + 25); // signature + IHDR
  const idat = Buffer.alloc(8);
  idat.writeUInt32BE(size - head.length - 12);
  idat.write('IDAT', 4, 'latin1');
  writeFileSync(file, Buffer.concat([head, idat]));
  const fd = openSync(file, 'r+');
  ftruncateSync(fd, size);
  closeSync(fd);
}

describe('image files', () => {
  it('a directory is not an image', async () => {
    const dir = path.join(tmpRoot, 'a-folder.jpg');
    mkdirSync(dir);
    expectCode(await settle(model.encode(dir)), 'ERR_IMAGE_INVALID', /not a regular file|directory/);
  });

  it.skipIf(!HAS_MKFIFO)('a FIFO is refused at once (no blocking open, no endless read)', async () => {
    const fifo = makeFifo(path.join(tmpRoot, 'pipe.png'));
    const start = Date.now();
    expectCode(await settleWithin(model.encode(fifo), 2000, fifo), 'ERR_IMAGE_INVALID', /not a regular file/);
    expect(Date.now() - start).toBeLessThan(1000);
  });

  it('a file larger than maxBytes is refused before it is read', async () => {
    const size = statSync(jpegFile).size;
    expectCode(await settle(model.encode(jpegFile, { maxBytes: size - 1 })), 'ERR_IMAGE_TOO_LARGE', /maxBytes/);
    expect((await model.encode(jpegFile, { maxBytes: size })).shape).toEqual([1, 32]);
    expect((await model.preprocess(jpegFile, { maxBytes: size })).shape[0]).toBe(1);
    // maxBytes bounds file reads only: bytes already in memory are not refused by it.
    expect((await model.encode(readFileSync(jpegFile), { maxBytes: 1 })).shape).toEqual([1, 32]);
  });

  it('maxBytes must be a positive integer', async () => {
    for (const v of [0, -1, 1.5, NaN, '1000', Infinity]) {
      expectCode(await settle(model.encode(jpegFile, { maxBytes: v as number })), 'ERR_INVALID_ARGUMENT', /maxBytes/);
    }
    expectCode(await settle(model.preprocess(jpegFile, { maxBytes: 0 })), 'ERR_INVALID_ARGUMENT', /maxBytes/);
  });

  it('without maxBytes, the byte limit follows maxPixels (8 bytes a pixel + 64 MiB)', async () => {
    const file = path.join(tmpRoot, 'big.jpg');
    writeFileSync(file, readFileSync(jpegFile));
    truncateSync(file, 100 * 8 + 64 * 2 ** 20 + 1); // sparse
    const before = process.memoryUsage().rss;
    expectCode(await settle(model.encode(file, { maxPixels: 100 })), 'ERR_IMAGE_TOO_LARGE', /maxBytes/);
    expect(process.memoryUsage().rss - before).toBeLessThan(50 << 20);
  });

  it('the pixel limit is checked from the header, before a large file is read', async () => {
    const file = path.join(tmpRoot, 'huge-header.png');
    sparsePng(file, 100000, 100000, 300 << 20); // within the default byte limit, 1e10 pixels
    const before = process.memoryUsage().rss;
    expectCode(await settle(model.encode(file)), 'ERR_IMAGE_TOO_LARGE', /pixel limit/);
    expect(process.memoryUsage().rss - before).toBeLessThan(100 << 20);
  });

  it('a large file that fits the limits is still read whole', async () => {
    // A real JPEG padded to 3 MiB (bytes after EOI are ignored), larger than the header probe.
    const file = path.join(tmpRoot, 'padded.jpg');
    writeFileSync(file, Buffer.concat([readFileSync(jpegFile), Buffer.alloc(3 << 20)]));
    const a = await model.encode(file);
    const b = await model.encode(jpegFile);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
  });

  // In a child process: a regression here would eat memory or block a libuv thread for good.
  it.skipIf(!HAS_MKFIFO)('/dev/zero and a FIFO fail fast, with little memory, and the process exits', async () => {
    const fifo = makeFifo(path.join(tmpRoot, 'child-pipe.jpg'));
    const script = `
      const before = process.memoryUsage().rss;
      let peak = 0;
      const guard = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss - before);
        if (peak > (512 << 20)) { console.log(JSON.stringify({ runaway: peak })); process.exit(3); }
      }, 5);
      (async () => {
        const model = await vitmsn.loadModel(${JSON.stringify(goldenDir('tiny-s8'))}, { device: 'cpu' });
        const out = {};
        for (const [k, p] of [['zero', '/dev/zero'], ['fifo', ${JSON.stringify(fifo)}]]) {
          const t = Date.now();
          const r = await model.encode(p).then(() => 'ok', (e) => e.code);
          out[k] = { code: r, ms: Date.now() - t };
        }
        peak = Math.max(peak, process.memoryUsage().rss - before);
        await model.dispose();
        clearInterval(guard);
        console.log(JSON.stringify({ ...out, peak }));
      })();`;
    const r = await runNode(script, 30_000);
    expect(r.timedOut, `child did not exit: ${r.stdout} ${r.stderr}`).toBe(false);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.zero.code).toBe('ERR_IMAGE_INVALID');
    expect(out.fifo.code).toBe('ERR_IMAGE_INVALID');
    expect(out.zero.ms).toBeLessThan(1000);
    expect(out.fifo.ms).toBeLessThan(1000);
    expect(out.peak).toBeLessThan(200 << 20);
  });
});
