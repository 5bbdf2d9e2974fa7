// What every benchmark script shares: the machine line and git revision recorded with results, the
// append to bench/RESULTS.md, and the request image (a 640×480 JPEG made from a test image).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const benchDir = path.dirname(fileURLToPath(import.meta.url));
export const root = path.join(benchDir, '..');
export const RESULTS = path.join(benchDir, 'RESULTS.md');

/** "CPU model, N logical CPUs (M usable), load avg …; platform/arch, node vX". */
export function machine() {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    /* not Linux */
  }
  const usable = os.availableParallelism?.() ?? os.cpus().length;
  return `${cpu}, ${os.cpus().length} logical CPUs (${usable} usable), load avg ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}; ${os.platform()}/${os.arch()}, node ${process.version}`;
}

/** The checkout's short revision, marked when the tree has uncommitted changes. */
export function gitRev() {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
    return dirty ? `${rev} (uncommitted changes)` : rev;
  } catch {
    return 'not a checkout';
  }
}

/** The ISO time without milliseconds, as sections are dated. */
export const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** Appends a section (Markdown, starting with its "## " title) to bench/RESULTS.md. */
export function appendResults(section) {
  if (!fs.existsSync(RESULTS)) fs.writeFileSync(RESULTS, '# vitmsn benchmarks\n');
  fs.appendFileSync(RESULTS, `\n${section.trim()}\n`);
  console.error(`# appended to ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
}

/** The benches' request image: test/fixtures/images/chelsea.png as a 640×480 JPEG, quality 90 (4:2:0). */
export async function benchJpeg() {
  const sharp = createRequire(import.meta.url)('sharp');
  return sharp(path.join(root, 'test', 'fixtures', 'images', 'chelsea.png'))
    .resize(640, 480, { fit: 'fill' })
    .jpeg({ quality: 90 })
    .toBuffer();
}

/**
 * n JPEG files of about 640×480 (600–680 × 440–520) made from the test images by crops and
 * rescales, quality 90, written into `dir` as img-0000.jpg …; the same files for the same n.
 * @param {string} dir
 * @param {number} n
 * @returns {Promise<string[]>} their paths
 */
export async function makeJpegs(dir, n) {
  const sharp = createRequire(import.meta.url)('sharp');
  const srcs = ['chelsea.png', 'coffee.png', 'camera.png', 'logo.png'].map((f) =>
    path.join(root, 'test', 'fixtures', 'images', f),
  );
  const files = [];
  for (let i = 0; i < n; i++) {
    const w = 600 + ((i * 37) % 81),
      h = 440 + ((i * 53) % 81);
    const buf = await sharp(srcs[i % srcs.length])
      .resize(w + 40, h + 40, { fit: 'fill' })
      .extract({ left: (i * 7) % 40, top: (i * 11) % 40, width: w, height: h })
      .jpeg({ quality: 90 })
      .toBuffer();
    const f = path.join(dir, `img-${String(i).padStart(4, '0')}.jpg`);
    fs.writeFileSync(f, buf);
    files.push(f);
  }
  return files;
}

/** Debian's python3 (has python3-onnx); `VITMSN_ONNX_PYTHON` overrides. */
const ONNX_PYTHON = process.env.VITMSN_ONNX_PYTHON || '/usr/bin/python3';

/**
 * The onnxruntime q8 baseline of an fp32 ONNX model (bench/quantize_q8.py: every constant-weight
 * MatMul → com.microsoft DynamicQuantizeMatMul, int8 symmetric per-tensor weights), made once into
 * a temp folder keyed by the source model and the script, and reused.
 * @param {string} onnxPath
 * @returns {string} the quantised model's path
 */
export function q8Model(onnxPath) {
  const script = path.join(benchDir, 'quantize_q8.py');
  const h = createHash('sha256')
    .update(fs.readFileSync(script))
    .update(path.resolve(onnxPath))
    .update(String(fs.statSync(onnxPath).mtimeMs))
    .digest('hex')
    .slice(0, 12);
  const dir = path.join(os.tmpdir(), `vitmsn-q8-${h}`);
  const out = path.join(dir, `${path.basename(onnxPath, '.onnx')}.q8.onnx`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    execFileSync(ONNX_PYTHON, [script, onnxPath, tmp], { stdio: ['ignore', 'ignore', 'inherit'] });
  } catch (e) {
    throw new Error(
      `${ONNX_PYTHON} bench/quantize_q8.py failed (needs Debian's python3-onnx: apt-get install -y python3-onnx): ${
        /** @type {Error} */ (e).message
      }`,
    );
  }
  fs.renameSync(tmp, out);
  return out;
}
