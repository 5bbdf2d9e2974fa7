/**
 * The calls a model queues (call-queue.ts) and how a batch of their items runs: images are
 * decoded and preprocessed when their batch is formed, one native call runs the batch, and each
 * caller gets its own rows back. A bad image fails only its own call; a cancelled call's rows are
 * dropped. No math here: pooling, softmax and the forward pass are native.
 */
import type { NativeAddon, NativeEmbedResult, NativeForwardOptions, NativeForwardResult, NativeModel } from './binding';
import type { BatchWork } from './batch-runner';
import type { BatchStats } from './batch-stats';
import { Call, type Item } from './call-queue';
import { deviceImageBatch } from './device-decode';
import { nativePreprocessConfig, topK, type Classification } from './encode';
import { fromNative } from './errors';
import { decodeImage, type DecodedImage, type DecodeOptions, type ImageInput } from './images';
import type { PreprocessorConfig } from './preprocessor';
import type { ForwardOutput, Tensor } from './types';
import { checkForward, checkImageShape, type ModelShape } from './validate';

/** What a batch needs from its model. */
export interface BatchContext {
  handle: NativeModel;
  addon: NativeAddon;
  preprocessor: PreprocessorConfig;
  shape: ModelShape;
  stats: BatchStats;
  /**
   * Spread each batch's resize over every core (a GPU model: the host must keep up with the device).
   * On the CPU the cores are the forward's, so one thread prepares the next batch beside it.
   */
  parallelPreprocess: boolean;
}

/** How an image call's rows are made: pooled embeddings, or classifier probabilities. */
export type ImageOutput =
  | { kind: 'embed'; pooling: string; normalize: boolean }
  | { kind: 'probs'; topK: number; id2label: Record<string, string> | undefined };

/** encode() / classify(): one item per image. */
export class ImageCall extends Call {
  #rows: Float32Array | undefined;
  #labels: Classification[][] = [];
  #done = 0;

  constructor(
    readonly images: readonly ImageInput[],
    readonly output: ImageOutput,
    readonly interpolate: boolean,
    readonly decode: DecodeOptions,
    cap: number,
    /** decode: 'gpu': JPEG files go to the device decoder (device-decode.ts). */
    readonly onDevice = false,
  ) {
    super(cap);
  }

  /** Items of this call; `batchKey` names the calls it may share a batch with. */
  items(batchKey: string): Item[] {
    const key = `image ${batchKey} ${this.interpolate} ${this.onDevice ? 'gpu' : 'cpu'} ${JSON.stringify(this.output.kind === 'embed' ? this.output : 'probs')}`;
    return this.images.map((_, index) => ({ call: this, index, weight: 1, key }));
  }

  /** Row `b` of a batch result belongs to image `index` of this call. */
  deliver(index: number, r: NativeEmbedResult, b: number): void {
    if (this.settled) return;
    if (this.output.kind === 'embed') {
      const D = r.D;
      this.#rows ??= new Float32Array(this.images.length * D);
      this.#rows.set(r.embeddings!.subarray(b * D, (b + 1) * D), index * D);
    } else {
      const n = r.numLabels;
      this.#labels[index] = topK(
        r.probabilities!.subarray(b * n, (b + 1) * n),
        Math.min(this.output.topK, n),
        this.output.id2label,
      );
    }
    if (++this.#done < this.images.length) return;
    if (this.output.kind === 'embed') {
      const D = this.#rows!.length / this.images.length;
      this.succeed({ data: this.#rows!, shape: [this.images.length, D] } satisfies Tensor);
    } else {
      this.succeed(this.#labels);
    }
  }
}

/** forward(): one item for the whole call (its B images). */
export class ForwardCall extends Call {
  constructor(
    readonly pixels: Float32Array,
    readonly dims: number[],
    readonly options: NativeForwardOptions,
  ) {
    super(Number.POSITIVE_INFINITY);
  }

  /** Coalescible only with calls of the same image shape and plain options (no taps, no masks). */
  item(batching: boolean): Item {
    const o = this.options;
    const plain = batching && !o.outputHiddenStates && !o.outputAttentions && !o.headMask && !o.boolMaskedPos;
    const key = plain
      ? `forward ${this.dims.slice(1).join('x')} ${o.interpolatePosEncoding}`
      : `forward call ${this.id}`;
    return { call: this, index: 0, weight: this.dims[0], key };
  }
}

function toForwardOutput(r: NativeForwardResult, opts: NativeForwardOptions): ForwardOutput {
  const tensor = (data: Float32Array, s: number[]): Tensor => ({ data, shape: s });
  const out: ForwardOutput = { lastHiddenState: tensor(r.lastHiddenState, [r.B, r.T, r.D]) };
  if (opts.outputHiddenStates) out.hiddenStates = r.hiddenStates.map((d) => tensor(d, [r.B, r.T, r.D]));
  if (opts.outputAttentions) out.attentions = r.attentions.map((d) => tensor(d, [r.B, r.H, r.T, r.T]));
  if (r.logits) out.logits = tensor(r.logits, [r.B, r.numLabels]);
  return out;
}

/** Prepares one batch of the queue (all its items share a key, so they are of one kind). */
export function prepareBatch(ctx: BatchContext, items: Item[]): Promise<BatchWork | undefined> {
  if (items[0].call instanceof ForwardCall)
    return Promise.resolve(forwardBatch(ctx, items as Array<Item<ForwardCall>>));
  const images = items as Array<Item<ImageCall>>;
  return images[0].call.onDevice ? deviceImageBatch(ctx, images, imageBatch) : imageBatch(ctx, images);
}

function forwardBatch(ctx: BatchContext, items: Array<Item<ForwardCall>>): BatchWork | undefined {
  const live = items.filter((it) => !it.call.settled);
  if (!live.length) return undefined;
  const first = live[0].call;
  const B = live.reduce((n, it) => n + it.weight, 0);
  let pixels = first.pixels;
  if (live.length > 1) {
    pixels = new Float32Array(live.reduce((n, it) => n + it.call.pixels.length, 0));
    let off = 0;
    for (const it of live) (pixels.set(it.call.pixels, off), (off += it.call.pixels.length));
  }
  const opts = { ...first.options, borrowPixels: true };
  return {
    run: async () => {
      let r: NativeForwardResult;
      try {
        r = await ctx.handle.forward(pixels, [B, ...first.dims.slice(1)], opts);
      } catch (e) {
        const err = fromNative(e);
        for (const it of live) it.call.fail(err);
        return;
      }
      ctx.stats.batch(B);
      if (live.length === 1) return void first.succeed(toForwardOutput(r, first.options));
      // Each caller gets its own rows (copies: results never share a buffer between callers).
      const per = r.T * r.D;
      let b0 = 0;
      for (const it of live) {
        const b = it.weight;
        const part: NativeForwardResult = {
          ...r,
          B: b,
          hiddenStates: [],
          attentions: [],
          lastHiddenState: r.lastHiddenState.slice(b0 * per, (b0 + b) * per),
          logits: r.logits ? r.logits.slice(b0 * r.numLabels, (b0 + b) * r.numLabels) : r.logits,
        };
        it.call.succeed(toForwardOutput(part, it.call.options));
        b0 += b;
      }
    },
  };
}

/** A batch of image items decoded on the CPU (sharp), run by one embed call; calls that queue while it is prepared may join it. */
export async function imageBatch(ctx: BatchContext, items: Array<Item<ImageCall>>): Promise<BatchWork | undefined> {
  const first = await decodePart(ctx, items);
  if (!first) return undefined;
  let { live, px } = first;
  return {
    // Images that keep their own sizes (no resize) cannot be joined into one pixel array.
    join: ctx.preprocessor.doResize
      ? async (more: Item[]) => {
          const part = await decodePart(ctx, more as Array<Item<ImageCall>>);
          if (part) ((live = [...live, ...part.live]), (px = concat([px, part.px])));
        }
      : undefined,
    run: async () => {
      const call = live[0].it.call; // calls cancelled since keep their rows in px: deliver() drops them
      const calls = [...new Set(live.map((l) => l.it.call))];
      let r: NativeEmbedResult;
      try {
        const [, H, W, C] = px.shape;
        checkImageShape(ctx.shape, C, H, W, call.interpolate);
        r = await embedFitting(ctx.handle, px, embedOptions(ctx, call), embedOutputs(call));
      } catch (e) {
        const err = fromNative(e);
        for (const c of calls) c.fail(err);
        return;
      }
      ctx.stats.batch(live.length);
      live.forEach((l, b) => l.it.call.deliver(l.it.index, r, b));
    },
  };
}

/**
 * Decodes (sharp, on libuv's pool, in parallel) and preprocesses items into resized uint8 levels
 * [n, H, W, 3] — rescale/normalize happen inside the embed op's patchify. A bad image fails its own
 * call only; undefined when none is left.
 */
async function decodePart(
  ctx: BatchContext,
  items: Array<Item<ImageCall>>,
): Promise<{ live: Array<{ it: Item<ImageCall>; img: DecodedImage }>; px: Pixels } | undefined> {
  const decoded = await Promise.all(
    items.map((it) =>
      decodeImage(it.call.images[it.index], it.index, it.call.decode).catch((e) => {
        it.call.fail(fromNative(e));
        return undefined;
      }),
    ),
  );
  let live = items.flatMap((it, k) => (decoded[k] && !it.call.settled ? [{ it, img: decoded[k]! }] : []));
  if (!live.length) return undefined;
  const cfg = nativePreprocessConfig(ctx.preprocessor);
  const levels = (images: typeof live) =>
    ctx.addon.preprocess(
      images.map((l) => l.img),
      cfg,
      { uint8: true, parallel: ctx.parallelPreprocess },
    ) as Promise<Pixels>;
  try {
    return { live, px: await levels(live) };
  } catch {
    // Find the images the native preprocessing refuses, one by one; the others run together.
    const each = await Promise.all(
      live.map((l) =>
        levels([l]).catch((e) => {
          l.it.call.fail(fromNative(e));
          return undefined;
        }),
      ),
    );
    const ok = live.flatMap((l, k) => (each[k] && !l.it.call.settled ? [{ l, t: each[k]! }] : []));
    if (!ok.length) return undefined;
    live = ok.map((o) => o.l);
    return { live, px: concat(ok.map((o) => o.t)) };
  }
}

/** The options of an embed call for `call`'s images. */
export function embedOptions(ctx: BatchContext, call: ImageCall): Parameters<NativeModel['embed']>[2] {
  return { interpolatePosEncoding: call.interpolate, preprocess: nativePreprocessConfig(ctx.preprocessor) };
}

/** What an embed call for `call` returns: pooled rows, or probabilities. */
export function embedOutputs(call: ImageCall): Parameters<NativeModel['embed']>[3] {
  return call.output.kind === 'embed'
    ? { pooling: call.output.pooling, normalize: call.output.normalize }
    : { probabilities: true };
}

/** A batch of resized uint8 RGB images, [n, H, W, 3]. */
interface Pixels {
  data: Uint8Array;
  shape: number[];
}

function concat(parts: Pixels[]): Pixels {
  const [, H, W, C] = parts[0].shape;
  const data = new Uint8Array(parts.reduce((n, t) => n + t.data.length, 0));
  let off = 0;
  for (const t of parts) (data.set(t.data, off), (off += t.data.length));
  return { data, shape: [parts.reduce((n, t) => n + t.shape[0], 0), H, W, C] };
}

/**
 * handle.embed() on one batch; a batch of several images that the addon refuses for memory
 * (ERR_OUT_OF_MEMORY: garbage not yet collected, other work in the process) runs in halves. The
 * results do not depend on how images are batched.
 */
async function embedFitting(
  handle: NativeModel,
  px: Pixels,
  opts: Parameters<NativeModel['embed']>[2],
  how: Parameters<NativeModel['embed']>[3],
): Promise<NativeEmbedResult> {
  try {
    return await handle.embed(px.data, px.shape, opts, how);
  } catch (e) {
    const B = px.shape[0];
    if ((e as { code?: string }).code !== 'ERR_OUT_OF_MEMORY' || B < 2) throw e;
    const per = px.data.length / B,
      half = Math.floor(B / 2);
    const part = (from: number, to: number) =>
      embedFitting(
        handle,
        { data: px.data.subarray(from * per, to * per), shape: [to - from, ...px.shape.slice(1)] },
        opts,
        how,
      );
    const a = await part(0, half);
    const b = await part(half, B);
    const join = (x: Float32Array | null, y: Float32Array | null) => {
      if (!x || !y) return null;
      const out = new Float32Array(x.length + y.length);
      out.set(x);
      out.set(y, x.length);
      return out;
    };
    return {
      ...a,
      B,
      embeddings: join(a.embeddings, b.embeddings),
      probabilities: join(a.probabilities, b.probabilities),
    };
  }
}
