/**
 * `vitmsn probe fit <dir> --model <m> --out <headdir> [--protocol msn|plain] [--folds 5] [--C c]
 *                   [--pooling p] [--cache emb.safetensors] [--checkpoint <hfdir>] [--skip-non-images]`
 * `vitmsn probe eval <dir> --head <headdir> --model <m> [--cache emb.safetensors] [--skip-non-images]`
 *
 * <dir> is an ImageFolder tree (one sub-folder per class), or a .safetensors embeddings cache.
 * fit prints the CV accuracy of each C and the one chosen; eval prints accuracy, per-class
 * recall and the confusion matrix. Progress of the encoding goes to stderr.
 */
import { existsSync } from 'node:fs';
import { POOLINGS, type Pooling } from '../encode';
import { loadModel } from '../model';
import type { LoadOptions } from '../types';
import {
  embedImages,
  fitClassifier,
  loadEmbeddings,
  loadHead,
  readImageFolder,
  saveClassificationCheckpoint,
  saveEmbeddings,
  type LabelledEmbeddings,
} from './index';
import { invalid } from '../check';

type Values = Record<string, string | boolean | undefined>;
type Out = { write(s: string): unknown; isTTY?: boolean };

export const PROBE_OPTIONS = {
  head: { type: 'string' },
  protocol: { type: 'string' },
  folds: { type: 'string' },
  C: { type: 'string' },
  cache: { type: 'string' },
  checkpoint: { type: 'string' },
  'skip-non-images': { type: 'boolean' },
} as const;

export const PROBE_USAGE = `  vitmsn probe fit <dir> --model <dir> --out <headdir> [--protocol msn|plain] [--folds 5] [--C c]
                 [--pooling p] [--cache emb.safetensors] [--checkpoint <hfdir>] [--skip-non-images]
  vitmsn probe eval <dir> --head <headdir> [--model <dir>] [--cache emb.safetensors]
                 <dir>: an ImageFolder tree (one sub-folder per class) or a .safetensors embeddings cache
`;

function usage(m: string): never {
  throw Object.assign(new Error(m), { usage: true });
}

function encodeLine(out: Out) {
  let last = 0;
  return ({ done, total }: { done: number; total: number }) => {
    const now = Date.now();
    if (out.isTTY) {
      if (done < total && now - last < 100) return;
      last = now;
      const w = 30;
      const f = Math.round((done / total) * w);
      out.write(`\rencoding ${'█'.repeat(f)}${'░'.repeat(w - f)} ${done}/${total} images${done === total ? '\n' : ''}`);
    } else if (done === total || now - last > 2000) {
      last = now;
      out.write(`encoding: ${done}/${total} images\n`);
    }
  };
}

async function embeddingsFor(
  src: string,
  v: Values,
  pooling: Pooling,
  load: LoadOptions,
  err: Out,
): Promise<LabelledEmbeddings> {
  if (src.endsWith('.safetensors')) return loadEmbeddings(src);
  const cache = v.cache as string | undefined;
  if (cache && existsSync(cache)) {
    const e = loadEmbeddings(cache);
    if (e.pooling === pooling) {
      err.write(`using cached embeddings ${cache} (${e.shape[0]}x${e.shape[1]})\n`);
      return e;
    }
    err.write(`cache ${cache} holds '${e.pooling}' embeddings, not '${pooling}': re-encoding\n`);
  }
  const folder = readImageFolder(src, { skipNonImages: v['skip-non-images'] === true });
  for (const f of folder.skipped) err.write(`warning: skipping ${f} (not an image)\n`);
  if (typeof v.model !== 'string') usage('--model <dir> is required to encode images');
  const model = await loadModel(v.model, load);
  try {
    const e = await embedImages(model, folder.images, folder.labels, { pooling, onProgress: encodeLine(err) });
    if (cache) {
      saveEmbeddings(cache, e, { model: v.model });
      err.write(`wrote embeddings cache ${cache}\n`);
    }
    return e;
  } finally {
    await model.dispose();
  }
}

export async function probeCommand(
  args: string[],
  v: Values,
  load: LoadOptions,
  out: Out = process.stdout,
  err: Out = process.stderr,
): Promise<void> {
  const [sub, src, ...extra] = args;
  if (!sub || !src || extra.length) usage('probe needs a subcommand and one folder: probe fit|eval <dir>');
  if (sub === 'fit') {
    const protocol = (v.protocol as string | undefined) ?? 'msn';
    if (protocol !== 'msn' && protocol !== 'plain') usage('--protocol must be msn or plain');
    const pooling = ((v.pooling as string | undefined) ?? (protocol === 'msn' ? 'cls-prenorm' : 'cls')) as Pooling;
    if (!POOLINGS.includes(pooling)) usage(`--pooling must be one of ${POOLINGS.join(', ')}`);
    if (typeof v.out !== 'string') usage('--out <headdir> is required');
    const folds = v.folds === undefined ? 5 : Number(v.folds);
    const C = v.C === undefined ? undefined : Number(v.C);
    const set = await embeddingsFor(src, v, pooling, load, err);
    const t0 = performance.now();
    const head = await fitClassifier(set, {
      protocol,
      folds,
      ...(C !== undefined ? { C } : {}),
      onCv: (cv) => {
        out.write(
          `${cv.folds}-fold CV accuracy (${protocol}, ${set.shape[0]} embeddings, ${new Set(set.labels).size} classes):\n`,
        );
        for (const s of cv.scores)
          out.write(
            `  C=${String(s.C).padEnd(6)} ${(100 * s.accuracy).toFixed(2)}%${s.C === cv.bestC ? '  <- chosen' : ''}\n`,
          );
      },
    });
    if (!head.cv)
      out.write(`C=${head.C} (no cross-validation${C === undefined ? ': a class has a single example' : ''})\n`);
    out.write(
      `fitted in ${(performance.now() - t0).toFixed(0)} ms (C=${head.C}, ${head.info.iterations} L-BFGS iterations)\n`,
    );
    head.save(v.out);
    out.write(`wrote head to ${v.out}\n`);
    if (typeof v.checkpoint === 'string') {
      if (typeof v.model !== 'string') usage('--checkpoint needs --model (the backbone folder)');
      saveClassificationCheckpoint(head, v.model, v.checkpoint);
      out.write(`wrote ViTMSNForImageClassification checkpoint to ${v.checkpoint}\n`);
    }
    return;
  }
  if (sub === 'eval') {
    if (typeof v.head !== 'string') usage('--head <headdir> is required');
    const head = loadHead(v.head);
    const set = await embeddingsFor(src, v, head.pooling, load, err);
    const pred = head.predict(set, { topK: 1 });
    const K = head.classes.length;
    const index = new Map(head.classes.map((c, i) => [c, i]));
    const conf = Array.from({ length: K }, () => new Array<number>(K).fill(0));
    let ok = 0;
    let unknown = 0;
    set.labels.forEach((l, i) => {
      const t = index.get(l);
      if (t === undefined) {
        unknown++;
        return;
      }
      conf[t][pred[i][0].index]++;
      if (pred[i][0].index === t) ok++;
    });
    const n = set.labels.length - unknown;
    if (n === 0) invalid(`none of the labels in ${src} are classes of the head (${head.classes.join(', ')})`);
    out.write(
      `accuracy: ${((100 * ok) / n).toFixed(2)}% (${ok}/${n})${unknown ? `; ${unknown} images of classes the head does not know were left out` : ''}\n`,
    );
    out.write('per-class recall:\n');
    const w = Math.max(5, ...head.classes.map((c) => c.length));
    head.classes.forEach((c, i) => {
      const tot = conf[i].reduce((a, b) => a + b, 0);
      out.write(`  ${c.padEnd(w)} ${tot ? `${((100 * conf[i][i]) / tot).toFixed(2)}%` : '-'} (${conf[i][i]}/${tot})\n`);
    });
    out.write(
      `confusion matrix (rows: true, columns: predicted):\n${''.padEnd(w + 2)}${head.classes.map((c) => c.slice(0, 8).padStart(9)).join('')}\n`,
    );
    head.classes.forEach((c, i) =>
      out.write(`  ${c.padEnd(w)}${conf[i].map((x) => String(x).padStart(9)).join('')}\n`),
    );
    return;
  }
  usage(`unknown probe subcommand ${JSON.stringify(sub)} (fit or eval)`);
}
