/**
 * Fitted heads: a linear probe ('msn' or 'plain' protocol) or a k-NN classifier, their predictions
 * (shaped like Model.classify()), and their files.
 *
 * Head folder (any kind): head.json {format: 'vitmsn-probe-head', version: 1, kind: 'linear'|'knn',
 * protocol, pooling, classes, C, cv, k, temperature, model} + head.safetensors (float64):
 *   linear: weight [K, D], bias [K], and for 'msn' mean [D] (features are (x − mean)/||x − mean||
 *           before the linear layer);
 *   knn:    bank [N, D] (L2-normalised), bank_labels [N] (class indices as float64).
 * A 'plain' head can also be saved as a Hugging Face ViTMSNForImageClassification checkpoint
 * (saveClassificationCheckpoint): config.json + model.safetensors with the backbone under `vit.`
 * and classifier.weight [K, D] / classifier.bias [K] in float32.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { VitMsnError } from '../errors';
import type { Classification, Pooling } from '../encode';
import type { ImageInput } from '../images';
import type { Model } from '../model';
import type { CvResult } from './cv';
import { centreNormalize } from './features';
import { knnVotes } from './knn';
import { decision, softmaxRows } from './logreg';
import {
  asFloat64,
  f32Tensor,
  f64Tensor,
  rawSafetensorsBytes,
  readSafetensorsFile,
  type RawTensor,
} from './safetensors-read';
import { invalid } from '../check';

export type Protocol = 'msn' | 'plain';
type Rows = { data: Float32Array | Float64Array; shape: readonly number[] };

function checkRows(e: Rows, D: number): number {
  if (
    !e ||
    !(e.data instanceof Float32Array || e.data instanceof Float64Array) ||
    !Array.isArray(e.shape) ||
    e.shape.length !== 2
  ) {
    invalid('embeddings must be { data: Float32Array | Float64Array, shape: [N, D] }');
  }
  const [n, d] = e.shape;
  if (d !== D || e.data.length !== n * d)
    throw new VitMsnError(
      'ERR_SHAPE_MISMATCH',
      `embeddings of shape ${JSON.stringify(e.shape)} do not fit a head of width ${D}`,
    );
  for (let i = 0; i < e.data.length; i++)
    if (!Number.isFinite(e.data[i])) invalid(`embedding row ${Math.floor(i / d)} has a non-finite value`);
  return n;
}

function ranked(scores: Float64Array, n: number, K: number, classes: string[], topK: number): Classification[][] {
  const out: Classification[][] = [];
  for (let i = 0; i < n; i++) {
    const row = scores.subarray(i * K, i * K + K);
    const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
    out.push(order.slice(0, topK).map((index) => ({ label: classes[index], index, score: row[index] })));
  }
  return out;
}

abstract class HeadBase {
  abstract readonly kind: 'linear' | 'knn';
  constructor(
    readonly classes: string[],
    readonly D: number,
    readonly pooling: Pooling,
  ) {}
  /** Class probabilities [n, K] (softmax of the logits, or normalised k-NN votes). */
  abstract probabilities(e: Rows): Float64Array;
  /** Per row, the topK classes best first: { label, index, score }, like Model.classify(). */
  predict(e: Rows, options: { topK?: number } = {}): Classification[][] {
    const n = checkRows(e, this.D);
    return ranked(this.probabilities(e), n, this.classes.length, this.classes, options.topK ?? 5);
  }
  /** Encodes images with `model` (this head's pooling) and predicts. */
  async classifyImages(
    model: Model,
    images: ImageInput | readonly ImageInput[],
    options: { topK?: number; batchSize?: number; decode?: 'cpu' | 'gpu' } = {},
  ): Promise<Classification[][]> {
    const t = await model.encode(images, {
      pooling: this.pooling,
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
      ...(options.decode ? { decode: options.decode } : {}),
    });
    return this.predict(t, options);
  }
  protected writeFiles(dir: string, json: Record<string, unknown>, tensors: Record<string, RawTensor>) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, 'head.json'),
      `${JSON.stringify({ format: 'vitmsn-probe-head', version: 1, kind: this.kind, pooling: this.pooling, classes: this.classes, ...json }, null, 1)}\n`,
    );
    writeFileSync(path.join(dir, 'head.safetensors'), rawSafetensorsBytes(tensors));
  }
}

export class LinearHead extends HeadBase {
  readonly kind = 'linear' as const;
  constructor(
    classes: string[],
    D: number,
    pooling: Pooling,
    readonly protocol: Protocol,
    /** [K, D] float64. */ readonly weight: Float64Array,
    /** [K]. */ readonly bias: Float64Array,
    /** [D], 'msn' only. */ readonly mean: Float64Array | undefined,
    readonly C: number,
    readonly cv: CvResult | undefined,
    readonly info: Record<string, unknown> = {},
  ) {
    super(classes, D, pooling);
  }
  /** Logits X·Wᵀ + b [n, K] (after centring + normalisation for 'msn'), float64. */
  decisionFunction(e: Rows): Float64Array {
    const n = checkRows(e, this.D);
    const X = this.mean
      ? centreNormalize(e.data, n, this.mean)
      : e.data instanceof Float64Array
        ? e.data
        : Float64Array.from(e.data);
    return decision(X, n, this.D, this.weight, this.bias, this.classes.length);
  }
  probabilities(e: Rows): Float64Array {
    const Z = this.decisionFunction(e);
    const K = this.classes.length;
    return softmaxRows(Z, Z.length / K, K);
  }
  /** Writes head.json + head.safetensors into `dir`. */
  save(dir: string): void {
    const K = this.classes.length;
    const tensors: Record<string, RawTensor> = {
      weight: f64Tensor(this.weight, [K, this.D]),
      bias: f64Tensor(this.bias, [K]),
    };
    if (this.mean) tensors.mean = f64Tensor(this.mean, [this.D]);
    this.writeFiles(dir, { protocol: this.protocol, C: this.C, cv: this.cv, ...this.info }, tensors);
  }
}

export class KnnHead extends HeadBase {
  readonly kind = 'knn' as const;
  constructor(
    classes: string[],
    D: number,
    pooling: Pooling,
    /** [N, D] L2-normalised. */ readonly bank: Float64Array,
    readonly bankLabels: Int32Array,
    readonly k: number,
    readonly temperature: number,
  ) {
    super(classes, D, pooling);
  }
  /** Raw votes Σ exp(sim/T) per class [n, K]. */
  votes(e: Rows): Float64Array {
    const n = checkRows(e, this.D);
    return knnVotes(
      this.bank,
      this.bankLabels,
      this.bankLabels.length,
      this.D,
      this.classes.length,
      e.data,
      n,
      this.k,
      this.temperature,
    );
  }
  probabilities(e: Rows): Float64Array {
    const V = this.votes(e);
    const K = this.classes.length;
    for (let i = 0; i < V.length; i += K) {
      let s = 0;
      for (let k = 0; k < K; k++) s += V[i + k];
      for (let k = 0; k < K; k++) V[i + k] /= s;
    }
    return V;
  }
  save(dir: string): void {
    this.writeFiles(
      dir,
      { k: this.k, temperature: this.temperature },
      {
        bank: f64Tensor(this.bank, [this.bankLabels.length, this.D]),
        bank_labels: f64Tensor(Float64Array.from(this.bankLabels), [this.bankLabels.length]),
      },
    );
  }
}

export type Head = LinearHead | KnnHead;

/** Reads a head folder written by `head.save(dir)` (or `vitmsn probe fit --out`). */
export function loadHead(dir: string): Head {
  const jsonFile = path.join(dir, 'head.json');
  if (!existsSync(jsonFile)) invalid(`${dir} has no head.json (not a probe head folder)`);
  const j = JSON.parse(readFileSync(jsonFile, 'utf8')) as Record<string, any>;
  if (j.format !== 'vitmsn-probe-head' || j.version !== 1)
    invalid(`${jsonFile}: unknown format ${j.format} v${j.version}`);
  const { tensors } = readSafetensorsFile(path.join(dir, 'head.safetensors'));
  const classes = j.classes as string[];
  if (j.kind === 'knn') {
    const bank = tensors.bank;
    return new KnnHead(
      classes,
      bank.shape[1],
      j.pooling,
      asFloat64(bank),
      Int32Array.from(asFloat64(tensors.bank_labels)),
      j.k,
      j.temperature,
    );
  }
  const w = tensors.weight;
  const { format, version, kind, pooling, protocol, C, cv, ...info } = j;
  void format;
  void version;
  void kind;
  void classes;
  return new LinearHead(
    classes,
    w.shape[1],
    pooling,
    protocol,
    asFloat64(w),
    asFloat64(tensors.bias),
    tensors.mean ? asFloat64(tensors.mean) : undefined,
    C,
    cv,
    info,
  );
}

/**
 * Writes a 'plain' head with its backbone as a Hugging Face ViTMSNForImageClassification folder:
 * config.json (the backbone's, with architectures, id2label, label2id, num_labels) and
 * model.safetensors (every backbone tensor under `vit.`, plus classifier.weight [K, D] and
 * classifier.bias [K] in float32); preprocessor_config.json is copied when the backbone has one.
 * The backbone folder must hold a single model.safetensors.
 */
export function saveClassificationCheckpoint(head: LinearHead, backboneDir: string, outDir: string): void {
  if (head.protocol !== 'plain') {
    invalid(
      "only a 'plain' head is a linear layer on the model's output; an 'msn' head (centring + normalisation) is saved with head.save()",
    );
  }
  if (head.pooling !== 'cls')
    invalid(
      `the classifier reads the CLS token of last_hidden_state (pooling 'cls'); this head was fitted on '${head.pooling}'`,
    );
  const weights = path.join(backboneDir, 'model.safetensors');
  if (!existsSync(weights))
    throw new VitMsnError(
      'ERR_WEIGHTS_NOT_FOUND',
      `${backboneDir} has no model.safetensors (a single safetensors file is needed to write the checkpoint)`,
    );
  const config = JSON.parse(readFileSync(path.join(backboneDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  if (config.hidden_size !== head.D)
    throw new VitMsnError(
      'ERR_SHAPE_MISMATCH',
      `the head is ${head.D} wide but the backbone's hidden_size is ${config.hidden_size}`,
    );
  const { tensors } = readSafetensorsFile(weights);
  const out: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (name.startsWith('classifier.')) continue; // a previous head
    out[name.startsWith('vit.') ? name : `vit.${name}`] = t;
  }
  const K = head.classes.length;
  out['classifier.weight'] = f32Tensor(head.weight, [K, head.D]);
  out['classifier.bias'] = f32Tensor(head.bias, [K]);
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  head.classes.forEach((c, i) => {
    id2label[String(i)] = c;
    label2id[c] = i;
  });
  mkdirSync(outDir, { recursive: true });
  const cfg = { ...config, architectures: ['ViTMSNForImageClassification'], id2label, label2id, num_labels: K };
  writeFileSync(path.join(outDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  writeFileSync(path.join(outDir, 'model.safetensors'), rawSafetensorsBytes(out, { format: 'pt' }));
  const pre = path.join(backboneDir, 'preprocessor_config.json');
  if (existsSync(pre)) copyFileSync(pre, path.join(outDir, 'preprocessor_config.json'));
}
