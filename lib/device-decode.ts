/**
 * GPU decoding (encode() / classify() with decode: 'gpu' on a CUDA model): JPEG files go to the
 * device as they are — nvJPEG decodes them and Pillow's resize runs there (native) — and every other
 * image of the batch (other formats, grey / CMYK / EXIF-rotated JPEGs, raw pixels, files the device
 * decoder refuses) takes the CPU path. Each caller still gets its own rows. No math here.
 */
import type { NativeEmbedResult } from './binding';
import type { BatchWork } from './batch-runner';
import type { Item } from './call-queue';
import { fromNative } from './errors';
import { deviceJpeg } from './images';
import { embedOptions, embedOutputs, type BatchContext, type ImageCall } from './model-calls';

type CpuBatch = (ctx: BatchContext, items: Array<Item<ImageCall>>) => Promise<BatchWork | undefined>;

/** One batch of decode: 'gpu' items: the device's JPEGs in one embed call, the rest through `cpuBatch`. */
export async function deviceImageBatch(
  ctx: BatchContext,
  items: Array<Item<ImageCall>>,
  cpuBatch: CpuBatch,
): Promise<BatchWork | undefined> {
  const files = await Promise.all(
    items.map((it) =>
      deviceJpeg(it.call.images[it.index], it.index, it.call.decode).catch((e) => {
        it.call.fail(fromNative(e));
        return undefined;
      }),
    ),
  );
  const gpu: Array<{ it: Item<ImageCall>; file: Uint8Array }> = [];
  const cpu: Array<Item<ImageCall>> = [];
  items.forEach((it, k) => {
    if (it.call.settled) return;
    const file = files[k];
    if (file) gpu.push({ it, file });
    else cpu.push(it);
  });
  const cpuWork = cpu.length ? await cpuBatch(ctx, cpu) : undefined;
  if (!gpu.length && !cpuWork) return undefined;
  return {
    run: async () => {
      if (gpu.length) await runOnDevice(ctx, gpu, cpuBatch);
      await cpuWork?.run();
    },
  };
}

/** The device's part: files it refuses are moved to the CPU path and the rest asked again. */
async function runOnDevice(
  ctx: BatchContext,
  gpu: Array<{ it: Item<ImageCall>; file: Uint8Array }>,
  cpuBatch: CpuBatch,
): Promise<void> {
  let live = gpu.filter((g) => !g.it.call.settled);
  while (live.length) {
    const first = live[0].it.call;
    const H = ctx.preprocessor.size.height,
      W = ctx.preprocessor.size.width;
    let r: NativeEmbedResult;
    try {
      r = await ctx.handle.embed(
        live.map((g) => g.file),
        [live.length, H, W, 3],
        embedOptions(ctx, first),
        embedOutputs(first),
      );
    } catch (e) {
      const err = fromNative(e);
      for (const c of new Set(live.map((g) => g.it.call))) c.fail(err);
      return;
    }
    if (r.rejected?.length) {
      const refused = new Set(r.rejected.map((x) => x.index));
      const work = await cpuBatch(
        ctx,
        live.filter((_, k) => refused.has(k)).map((g) => g.it),
      );
      await work?.run();
      live = live.filter((g, k) => !refused.has(k) && !g.it.call.settled);
      continue;
    }
    ctx.stats.batch(live.length);
    live.forEach((g, b) => g.it.call.deliver(g.it.index, r, b));
    return;
  }
}
