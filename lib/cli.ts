#!/usr/bin/env node
/**
 * The `vitmsn` command: embed images, classify them, or describe this installation.
 *
 *   vitmsn embed <images...> --model <dir> [--pooling cls|cls-prenorm|mean] [--normalize] [--out file]
 *   vitmsn classify <images...> --model <dir> [--top-k 5]
 *   vitmsn info [--json]
 *   vitmsn serve --model <dir> [--port 8080] [--host 127.0.0.1] [limits…]   (HTTP server, lib/serve)
 *   vitmsn worker --redis <url> --queue <name> --model <dir>            (queue worker, lib/distributed)
 *   vitmsn enqueue <images...> --redis <url> --queue <name> [--out <dir>] [--wait]
 *
 * Exit codes: 0 success, 1 a VitMsnError or other failure (message and code on stderr), 2 usage.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backends, loadModel } from './model';
import { isVitMsnError, VitMsnError } from './errors';
import { DECODERS, POOLINGS, type Pooling } from './encode';
import { IMAGE_EXTENSIONS } from './images';
import { native, type NativeKnob } from './binding';
import { npyBytes, safetensorsBytes } from './writers';
import { loadHead } from './probe/index';
import { ProgressBar } from './progress-bar';
import type { Device, DType } from './types';
import { probeCommand, PROBE_OPTIONS, PROBE_USAGE } from './probe/cli';
import { DISTRIBUTED_HELP, DISTRIBUTED_OPTIONS, DISTRIBUTED_USAGE } from './distributed/cli-options';

const USAGE = `Usage:
  vitmsn embed <images...> --model <dir> [options]   one embedding per image
  vitmsn classify <images...> --model <dir> [--top-k N] [--head <dir>]
  vitmsn info [--json]                               version, backends, CPU features
  vitmsn serve --model <dir> [serve options]         HTTP server: POST /v1/embeddings, /v1/classify
${PROBE_USAGE}${DISTRIBUTED_USAGE}
Images are files (JPEG, PNG, WebP, GIF, TIFF, AVIF) or folders of them.

Options:
  -m, --model <dir|id>   Hugging Face model folder (config.json + weights), or a hub id (owner/name),
                         downloaded into the Hugging Face cache with a progress bar on stderr
      --revision <rev>   hub branch, tag or commit (with a hub id)
      --pooling <p>      cls (default) | cls-prenorm | mean
      --normalize        L2-normalise each embedding
  -o, --out <file>       .npy or .safetensors (an [N, D] float32 matrix), or .jsonl; default: JSON lines on stdout
      --top-k <n>        classes per image for classify (default 5)
      --device <d>       auto (default) | cpu | cuda | cuda:N
      --dtype <t>        float32 (default) | float16 | bfloat16 | int8 (CPU)
      --threads <n>      CPU threads (default: physical cores)
      --batch-size <n>   images per forward pass (default 16 on the CPU, 128 on a GPU)
      --decode <d>       cpu (default) | gpu: JPEG files decoded by nvJPEG on a CUDA device (embed, classify, serve)
  -h, --help             this text
  -v, --version          the package version

Serve options (vitmsn serve):
      --port <n>             TCP port (default 8080; 0 = any free port)
      --host <addr>          address to listen on (default 127.0.0.1; 0.0.0.0 for all)
      --max-batch <n>        most images per model batch, requests coalesced (default 8 on the CPU, 128 on a GPU; 1 = no batching)
      --max-delay-ms <n>     how long an idle model waits to fill a batch (default 2)
      --max-queue <n>        most images waiting; more get 429 (default 1024)
      --max-body-bytes <n>   largest request body (default 33554432)
      --max-images <n>       most images per request (default 64)
      --max-pixels <n>       most pixels per image, checked before decoding (default 40000000)
      --max-concurrent <n>   most requests in progress; more get 429 (default 256)
      --timeout-ms <n>       deadline per request, 504 when it passes (default: none)
      --drain-delay-ms <n>   on SIGTERM, answer readyz 503 this long before closing (default 0)
      --drain-timeout-ms <n> on SIGTERM, exit 1 if requests in progress take longer (default 30000)

${DISTRIBUTED_HELP}`;

class UsageError extends Error {}

function version(): string {
  return (JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/** Files given, with folders expanded to the image files they hold (sorted, not recursive). */
function expandImages(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    let isDir = false;
    try {
      isDir = statSync(a).isDirectory();
    } catch {
      /* a missing file is reported by the decoder, with its code */
    }
    if (!isDir) {
      out.push(a);
      continue;
    }
    const names = readdirSync(a)
      .filter((n) => IMAGE_EXTENSIONS.has(path.extname(n).toLowerCase()))
      .sort();
    out.push(...names.map((n) => path.join(a, n)));
  }
  if (out.length === 0) throw new UsageError('no images given');
  return out;
}

function int(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** CPU model and the SIMD features that matter for the kernels (from /proc/cpuinfo on Linux). */
function cpuFeatures(): { model: string; cores: number; features: string[] } {
  const cpus = os.cpus();
  let flags: string[] = [];
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(flags|Features)\s*:\s*(.*)$/m.exec(info);
    if (line) flags = line[2].split(/\s+/);
  } catch {
    /* not Linux */
  }
  const wanted = [
    'sse4_2',
    'avx',
    'avx2',
    'fma',
    'f16c',
    'avx512f',
    'avx512bw',
    'avx512vl',
    'avx512_vnni',
    'avx512_bf16',
    'avx512_fp16',
    'amx_tile',
    'amx_bf16',
    'amx_int8',
    'asimd',
    'asimdhp',
    'sve',
    'sve2',
    'bf16',
    'i8mm',
  ];
  return { model: cpus[0]?.model ?? 'unknown', cores: cpus.length, features: wanted.filter((f) => flags.includes(f)) };
}

async function info(json: boolean) {
  const cpu = cpuFeatures();
  let list: ReturnType<typeof backends> = [];
  let addonError: string | undefined;
  let threads: number | undefined;
  let knobs: NativeKnob[] = [];
  try {
    list = backends();
    threads = native().defaultThreads();
    knobs = native().knobs();
  } catch (e) {
    addonError = (e as Error).message;
  }
  let decoder: string;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const v = (require('sharp') as { versions: Record<string, string> }).versions;
    decoder = `sharp ${v.sharp} (libvips ${v.vips})`;
  } catch (e) {
    decoder = `NOT LOADED: sharp could not be loaded (${(e as Error).message})`;
  }
  const report = {
    version: version(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    addon: addonError ? { loaded: false, error: addonError } : { loaded: true },
    decoder,
    backends: list,
    cpu: { ...cpu, defaultThreads: threads },
    knobs,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const lines = [`vitmsn ${report.version} (node ${report.node}, ${report.platform})`];
  if (addonError) lines.push(`native addon: NOT LOADED: ${addonError}`);
  lines.push(`image decoder: ${decoder}`);
  lines.push('backends:');
  for (const b of list)
    lines.push(
      `  ${b.name.padEnd(6)} ${b.available ? 'usable' : b.compiled ? 'not usable' : 'not compiled'}: ${b.detail}`,
    );
  lines.push(`cpu: ${cpu.model}, ${cpu.cores} logical CPUs, default threads ${threads ?? '?'}`);
  lines.push(`cpu features: ${cpu.features.join(' ') || '(none detected)'}`);
  lines.push('environment switches (README, "Environment switches"):');
  for (const k of knobs) lines.push(`  ${k.name.padEnd(28)} ${k.value ? `= ${k.value}` : `(unset: ${k.default})`}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

type Values = Record<string, string | boolean | undefined>;

function loadOptions(v: Values) {
  const threads = v.threads === undefined ? undefined : int(v.threads as string, 'threads', 0);
  return {
    device: (v.device as Device | undefined) ?? 'auto',
    dtype: (v.dtype as DType | undefined) ?? 'float32',
    threads,
    revision: v.revision as string | undefined,
    onProgress: progress.update,
  };
}

/**
 * --batch-size as given, else undefined: encode()/classify() then pick theirs per device (16 on
 * the CPU, 128 on a GPU). embed and classify load their model with batching off (one caller; the
 * batcher would cap every batch at its maxBatch, 8 on the CPU, whatever --batch-size says).
 */
function batchSizeOption(v: Values): number | undefined {
  const b = v['batch-size'] as string | undefined;
  return b === undefined ? undefined : int(b, 'batch-size', 0);
}

/** --decode: where JPEG files are decoded (encode()'s `decode`); checked here so that a typo is a usage error. */
function decodeOption(v: Values): 'cpu' | 'gpu' | undefined {
  const d = v.decode as string | undefined;
  if (d !== undefined && !(DECODERS as readonly string[]).includes(d))
    throw new UsageError(`--decode must be one of ${DECODERS.join(', ')}, got ${JSON.stringify(d)}`);
  return d as 'cpu' | 'gpu' | undefined;
}

/** Download progress (hub ids only) on stderr, so stdout stays clean JSON lines. */
const progress = new ProgressBar(process.stderr);

function requireModel(v: Values): string {
  if (typeof v.model !== 'string') throw new UsageError('--model <dir> is required');
  return v.model;
}

/** Images per encode() call when streaming JSON lines: bounds memory for any number of files. */
const STREAM_CHUNK = 256;

async function embed(files: string[], v: Values) {
  const pooling = (v.pooling as string | undefined) ?? 'cls';
  if (!POOLINGS.includes(pooling as Pooling)) throw new UsageError(`--pooling must be one of ${POOLINGS.join(', ')}`);
  const out = v.out as string | undefined;
  const ext = out ? path.extname(out).toLowerCase() : '.jsonl';
  if (!['.npy', '.safetensors', '.jsonl', '.json'].includes(ext))
    throw new UsageError('--out must end in .npy, .safetensors or .jsonl');
  const batchSize = batchSizeOption(v);
  const model = await loadModel(requireModel(v), { ...loadOptions(v), batching: false });
  progress.done();
  try {
    const opts = { pooling: pooling as Pooling, normalize: v.normalize === true, batchSize, decode: decodeOption(v) };
    if (ext === '.jsonl' || ext === '.json') {
      const lines: string[] = [];
      for (let i = 0; i < files.length; i += STREAM_CHUNK) {
        const chunk = files.slice(i, i + STREAM_CHUNK);
        const { data, shape } = await model.encode(chunk, opts);
        const D = shape[1];
        const text =
          chunk
            .map((f, j) => JSON.stringify({ image: f, embedding: Array.from(data.subarray(j * D, (j + 1) * D)) }))
            .join('\n') + '\n';
        if (out) lines.push(text);
        else process.stdout.write(text);
      }
      if (out) writeFileSync(out, lines.join(''));
      return;
    }
    const t = await model.encode(files, opts);
    const bytes =
      ext === '.npy'
        ? npyBytes(t.data, t.shape)
        : safetensorsBytes(
            { embeddings: t },
            {
              images: JSON.stringify(files),
              pooling,
              normalize: String(opts.normalize),
              model: path.resolve(requireModel(v)),
            },
          );
    writeFileSync(out!, bytes);
    process.stderr.write(`wrote ${t.shape[0]}x${t.shape[1]} float32 embeddings to ${out}\n`);
  } finally {
    await model.dispose();
  }
}

async function classify(files: string[], v: Values) {
  const topK = int(v['top-k'] as string | undefined, 'top-k', 5);
  const batchSize = batchSizeOption(v);
  const decode = decodeOption(v);
  // --head: a head fitted by `vitmsn probe fit` (linear or k-NN) on the backbone's embeddings.
  const head = typeof v.head === 'string' ? loadHead(v.head) : undefined;
  const model = await loadModel(requireModel(v), { ...loadOptions(v), batching: false });
  progress.done();
  try {
    for (let i = 0; i < files.length; i += STREAM_CHUNK) {
      const chunk = files.slice(i, i + STREAM_CHUNK);
      const res = head
        ? await head.classifyImages(model, chunk, { topK, batchSize, decode })
        : await model.classify(chunk, { topK, batchSize, decode });
      process.stdout.write(chunk.map((f, j) => JSON.stringify({ image: f, predictions: res[j] })).join('\n') + '\n');
    }
  } finally {
    await model.dispose();
  }
}

function nonNegative(v: string | undefined, name: string, fallback: number | undefined): number | undefined {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new UsageError(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * `vitmsn serve`: listens at once (healthz 200, readyz 503 while the model loads), logs the
 * address, then serves until SIGTERM/SIGINT (drain, exit 0). Resolves only when the model cannot
 * be loaded or the port cannot be taken.
 */
async function serve(v: Values): Promise<number> {
  const source = requireModel(v);
  const port = nonNegative(v.port as string | undefined, 'port', 8080)!;
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const host = (v.host as string | undefined) ?? '127.0.0.1';
  const opt = (name: string) => int(v[name] as string | undefined, name, 0) || undefined;
  const batching = {
    maxBatch: opt('max-batch'),
    maxDelayMs: nonNegative(v['max-delay-ms'] as string | undefined, 'max-delay-ms', undefined),
    maxQueue: opt('max-queue'),
  };
  const limits = {
    maxBodyBytes: opt('max-body-bytes'),
    maxImages: opt('max-images'),
    maxPixels: opt('max-pixels'),
    maxConcurrent: opt('max-concurrent'),
    timeoutMs: nonNegative(v['timeout-ms'] as string | undefined, 'timeout-ms', undefined),
    drainDelayMs: nonNegative(v['drain-delay-ms'] as string | undefined, 'drain-delay-ms', undefined),
  };
  const drainTimeoutMs = nonNegative(v['drain-timeout-ms'] as string | undefined, 'drain-timeout-ms', 30_000);
  const { createServer, loadService, installSignalHandlers } = await import('./serve/index');
  const log = (line: string) => process.stderr.write(`vitmsn: ${line}\n`);
  const t0 = Date.now();
  const loading = loadService(source, { ...loadOptions(v), batching, decode: decodeOption(v) });
  loading.catch(() => undefined);
  const app = await createServer(loading, limits);
  installSignalHandlers(app, { timeoutMs: drainTimeoutMs, log });
  const address = await app.listen({ port, host });
  log(`listening on ${address}`);
  try {
    const service = await loading;
    progress.done();
    log(
      `model ${service.info.name} ready in ${Date.now() - t0} ms (dim ${service.info.dim}, ${service.info.numLabels} labels)`,
    );
  } catch (e) {
    progress.done();
    await app.close().catch(() => undefined);
    throw e;
  }
  return new Promise<number>(() => undefined); // the signal handlers exit the process
}

/** A subcommand's usage error (an Error with `usage: true`) as the CLI's UsageError. */
function asUsage(e: unknown): never {
  throw (e as { usage?: boolean }).usage ? new UsageError((e as Error).message) : e;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: 'string', short: 'm' },
        revision: { type: 'string' },
        pooling: { type: 'string' },
        normalize: { type: 'boolean' },
        out: { type: 'string', short: 'o' },
        'top-k': { type: 'string' },
        device: { type: 'string' },
        dtype: { type: 'string' },
        threads: { type: 'string' },
        'batch-size': { type: 'string' },
        decode: { type: 'string' },
        json: { type: 'boolean' },
        port: { type: 'string' },
        host: { type: 'string' },
        'max-batch': { type: 'string' },
        'max-delay-ms': { type: 'string' },
        'max-queue': { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'max-images': { type: 'string' },
        'max-pixels': { type: 'string' },
        'max-concurrent': { type: 'string' },
        'timeout-ms': { type: 'string' },
        'drain-delay-ms': { type: 'string' },
        'drain-timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        ...PROBE_OPTIONS,
        ...DISTRIBUTED_OPTIONS,
      },
    });
  } catch (e) {
    process.stderr.write(`vitmsn: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  try {
    switch (command) {
      case 'embed':
        await embed(expandImages(rest), values);
        return 0;
      case 'classify':
        await classify(expandImages(rest), values);
        return 0;
      case 'probe':
        await probeCommand(rest, values, loadOptions(values)).catch(asUsage);
        return 0;
      case 'info':
        await info(values.json === true);
        return 0;
      case 'serve':
        if (rest.length > 0) throw new UsageError('serve takes no positional arguments');
        return await serve(values);
      // BullMQ is loaded only for these two commands.
      case 'worker':
        if (rest.length > 0) throw new UsageError('worker takes no positional arguments');
        return await (await import('./distributed/cli')).workerCommand(values, loadOptions(values)).catch(asUsage);
      case 'enqueue':
        return await (await import('./distributed/cli')).enqueueCommand(rest, values).catch(asUsage);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`vitmsn: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    const err = isVitMsnError(e) ? e : new VitMsnError('ERR_INTERNAL', String((e as Error)?.stack ?? e));
    process.stderr.write(`vitmsn: ${err.code}: ${err.message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`vitmsn: ERR_INTERNAL: ${(e as Error)?.stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
