#!/usr/bin/env node
// Seeded, time-bounded fuzzing of vitmsn's public API (the built package in dist/).
//
//   node scripts/fuzz.mjs [--seed N] [--seconds S] [--record] [--case-timeout MS] [--keep]
//
// Three categories of inputs, generated from the seed (case i of a seed is always the same input):
//   image    mutated encoded images (test/fixtures/images, test/fixtures/pil), raw-pixel objects
//            and non-image values, through model.encode / preprocess / classify with mutated options
//   model    copies of the fixture model folders with mutated config.json, model.safetensors,
//            pytorch_model.bin (or index / preprocessor files), through loadModel + one forward
//   forward  model.forward() with random shapes, lengths, typed arrays and options
//
// Every case runs in a child process (restarted after a crash or a hang) and is classified:
//   coded error      rejected with a VitMsnError whose code is one of dist/errors.js's known codes
//   accepted         succeeded, and the output passed every check that applies
//   crash            the child died (signal, abort, uncaught exception) while running the case
//   hang             the case did not settle within --case-timeout (default 10 s)
//   wrong success    succeeded where the input must be refused, or gave an invalid output
//                    (wrong shape, NaN/Infinity from finite inputs and finite moderate weights)
//   wrong rejection  refused an input that is valid by the documented rules (raw pixels, forward
//                    arguments, unmutated fixture images, options): only where that is certain
//   uncoded error    rejected with something other than a VitMsnError with a known code
// The exit status is 1 when any case is a crash, hang, wrong success, wrong rejection or uncoded
// error; each such case is saved (inputs, case.json, repro.mjs) under a temp folder that is printed.
// --record appends a dated section (machine, command, seed, table) to bench/FUZZ-RESULTS.md.
import { fork, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist', 'index.js');
const FIX = path.join(ROOT, 'test', 'fixtures');
const require = createRequire(path.join(ROOT, 'package.json'));

// ---------------------------------------------------------------------------------------------
// Shared: PRNG, special-value tags (values IPC cannot carry are rebuilt in the child)
// ---------------------------------------------------------------------------------------------

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  constructor(seed) {
    this.next = mulberry32(seed >>> 0);
  }
  f() {
    return this.next();
  }
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  } // inclusive
  chance(p) {
    return this.next() < p;
  }
  pick(arr) {
    return arr[Math.floor(this.next() * arr.length)];
  }
  weighted(pairs) {
    // [[weight, value], ...]
    const total = pairs.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, v] of pairs) if ((r -= w) < 0) return v;
    return pairs[pairs.length - 1][1];
  }
}

const caseSeed = (seed, i) => (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35)) >>> 0;

/** Values that cannot cross IPC are tagged: { __fz: kind, ... } and rebuilt by revive() in the child. */
function revive(v) {
  if (v === null || typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return v;
  if (Array.isArray(v)) return v.map(revive);
  if (typeof v.__fz === 'string') {
    switch (v.__fz) {
      case 'fn':
        return () => 1;
      case 'sym':
        return Symbol('fz');
      case 'sab': {
        // a typed array on a SharedArrayBuffer, holding v.data
        const sab = new SharedArrayBuffer(v.data.byteLength);
        const out = new v.data.constructor(sab);
        out.set(v.data);
        return out;
      }
      case 'detached': {
        const t = new v.data.constructor(v.data);
        structuredClone(t.buffer, { transfer: [t.buffer] });
        return t;
      }
      case 'view': {
        // a subarray of a larger buffer (offset v.pad elements)
        const big = new v.data.constructor(v.data.length + 2 * v.pad);
        big.set(v.data, v.pad);
        return big.subarray(v.pad, v.pad + v.data.length);
      }
      case 'dataview':
        return new DataView(v.data.buffer.slice(0));
      case 'arraybuffer':
        return v.data.buffer.slice(0);
      case 'date':
        return new Date(0);
      case 'map':
        return new Map([[1, 2]]);
      default:
        throw new Error(`unknown tag ${v.__fz}`);
    }
  }
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = revive(x);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Child: runs one case at a time, reports a summary of the result (never the big arrays)
// ---------------------------------------------------------------------------------------------

function summarizeTensor(t, lo = -Infinity, hi = Infinity) {
  if (!t || !(t.data instanceof Float32Array) || !Array.isArray(t.shape))
    return { bad: `not a tensor: ${Object.prototype.toString.call(t?.data)}` };
  let finite = true,
    inRange = true,
    min = Infinity,
    max = -Infinity;
  for (const x of t.data) {
    if (!Number.isFinite(x)) finite = false;
    else {
      if (x < min) min = x;
      if (x > max) max = x;
      if (x < lo || x > hi) inRange = false;
    }
  }
  return { shape: t.shape, length: t.data.length, finite, inRange, min, max };
}

async function childMain() {
  const vitmsn = require(DIST);
  const models = new Map();
  const base = async (name) => {
    if (!models.has(name))
      models.set(name, await vitmsn.loadModel(path.join(FIX, 'goldens', name), { device: 'cpu', threads: 1 }));
    return models.get(name);
  };

  // Self-test of the harness (test/fuzz.test.ts): VITMSN_FUZZ_INJECT="crash@3,hang@5,uncoded@7" makes
  // those case ids abort the child, never settle, or throw a plain TypeError.
  const inject = new Map(
    (process.env.VITMSN_FUZZ_INJECT ?? '')
      .split(',')
      .filter(Boolean)
      .map((x) => {
        const [k, id] = x.split('@');
        return [Number(id), k];
      }),
  );

  async function run(c) {
    const fault = inject.get(c.id);
    if (fault === 'crash') process.abort();
    if (fault === 'hang') await new Promise(() => {});
    if (fault === 'uncoded') throw new TypeError('injected fault');
    const args = revive(c.args);
    switch (c.op) {
      case 'encode':
      case 'preprocess':
      case 'classify': {
        const m = await base(c.model);
        const r = await m[c.op](args.images, args.options);
        if (c.op === 'classify') {
          const problems = [];
          if (!Array.isArray(r)) problems.push('not an array');
          else
            r.forEach((row, i) => {
              let prev = Infinity;
              if (!Array.isArray(row)) return problems.push(`row ${i} not an array`);
              for (const p of row) {
                if (!(p.score >= 0 && p.score <= 1) || p.score > prev)
                  problems.push(`row ${i}: score ${p.score} after ${prev}`);
                if (!Number.isInteger(p.index) || p.index < 0 || p.index >= m.numLabels || typeof p.label !== 'string')
                  problems.push(`row ${i}: bad entry ${JSON.stringify(p)}`);
                prev = p.score;
              }
            });
          return { rows: Array.isArray(r) ? r.map((x) => x?.length) : null, problems, numLabels: m.numLabels };
        }
        if (c.op === 'preprocess') return summarizeTensor(r, -2.118 - 1e-4, 2.64 + 1e-4);
        const s = summarizeTensor(r);
        if (args.options?.normalize === true && s.finite) {
          const [n, D] = r.shape;
          s.norms = [];
          for (let i = 0; i < n; i++) {
            let q = 0;
            for (let j = 0; j < D; j++) q += r.data[i * D + j] ** 2;
            s.norms.push(Math.sqrt(q));
          }
        }
        s.D = m.config.hiddenSize;
        return s;
      }
      case 'forward': {
        const m = await base(c.model);
        const out = await m.forward(args.pixels, args.shape, args.options);
        return {
          last: summarizeTensor(out.lastHiddenState),
          hidden: out.hiddenStates?.map((t) => summarizeTensor(t)),
          attn: out.attentions?.map((t) => summarizeTensor(t)),
          logits: out.logits ? summarizeTensor(out.logits) : undefined,
        };
      }
      case 'load': {
        const m = await vitmsn.loadModel(args.dir, args.options);
        try {
          const cfg = m.config;
          const [H, W] = Array.isArray(cfg.imageSize) ? cfg.imageSize : [cfg.imageSize, cfg.imageSize];
          const B = args.batch;
          const n = B * cfg.numChannels * H * W;
          if (n > 5e6) return { loaded: true, skippedForward: `input of ${n} values`, numLabels: m.numLabels };
          const px = new Float32Array(n);
          const r = mulberry32(args.pixelSeed);
          for (let i = 0; i < n; i++) px[i] = r() * 4 - 2;
          let out;
          try {
            out = await m.forward(px, [B, cfg.numChannels, H, W]);
          } catch (e) {
            return {
              loaded: true,
              forwardError: {
                vitmsn: e instanceof vitmsn.VitMsnError,
                name: e?.name,
                code: e?.code,
                message: String(e?.message ?? e).slice(0, 500),
              },
            };
          }
          return {
            loaded: true,
            numLabels: m.numLabels,
            hasMaskToken: m.hasMaskToken,
            last: summarizeTensor(out.lastHiddenState),
            logits: out.logits ? summarizeTensor(out.logits) : undefined,
          };
        } finally {
          await m.dispose();
        }
      }
      default:
        throw new Error(`unknown op ${c.op}`);
    }
  }

  process.on('message', async (c) => {
    let reply;
    try {
      reply = { id: c.id, ok: true, result: await run(c) };
    } catch (e) {
      reply = {
        id: c.id,
        ok: false,
        error: {
          vitmsn: e instanceof vitmsn.VitMsnError,
          name: e?.name,
          code: e?.code,
          message: String(e?.message ?? e).slice(0, 500),
          stack: String(e?.stack ?? '').slice(0, 1500),
        },
      };
    }
    process.send(reply);
  });
  await base('tiny-s8');
  await base('tiny-cls');
  await base('tiny-mask');
  process.send({ ready: true });
}

// ---------------------------------------------------------------------------------------------
// Parent: options, fixtures
// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const o = { seed: 1, seconds: 60, record: false, caseTimeout: 10_000, keep: false, maxCases: Infinity };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--seed') o.seed = Number(val());
    else if (a === '--seconds') o.seconds = Number(val());
    else if (a === '--case-timeout') o.caseTimeout = Number(val());
    else if (a === '--max-cases') o.maxCases = Number(val());
    else if (a === '--record') o.record = true;
    else if (a === '--keep') o.keep = true;
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) usage('--seed must be a non-negative integer');
  if (!(o.seconds > 0)) usage('--seconds must be positive');
  return o;
}

function usage(msg) {
  console.error(
    `fuzz: ${msg}\nusage: node scripts/fuzz.mjs [--seed N] [--seconds S] [--record] [--case-timeout MS] [--max-cases N] [--keep]`,
  );
  process.exit(2);
}

function knownCodes() {
  // The library's one list of codes (lib/errors.ts, ERROR_CODES).
  const { ERROR_CODES } = createRequire(import.meta.url)(path.join(ROOT, 'dist', 'errors.js'));
  return new Set(Object.keys(ERROR_CODES));
}

function loadFixtures() {
  const sharp = require('sharp');
  const images = [];
  for (const dir of [path.join(FIX, 'images'), path.join(FIX, 'pil')]) {
    for (const f of fs.readdirSync(dir).sort()) {
      if (!/\.(png|jpe?g|webp|gif|tiff?)$/i.test(f)) continue;
      images.push({ name: f, bytes: fs.readFileSync(path.join(dir, f)), file: path.join(dir, f) });
    }
  }
  return { images, sharp };
}

// ---------------------------------------------------------------------------------------------
// Byte mutators
// ---------------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const INTERESTING32 = [
  0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe,
];
const INTERESTING16 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0xfffe];

function pngChunks(b) {
  const out = [];
  let p = 8;
  while (p + 8 <= b.length) {
    const len = b.readUInt32BE(p);
    const type = b.toString('latin1', p + 4, p + 8);
    out.push({ pos: p, len, type, data: p + 8 });
    if (p + 12 + len > b.length) break;
    p += 12 + len;
  }
  return out;
}

/** Generic byte mutations; returns { bytes, notes[] }. */
function mutateBytes(rng, src, notes) {
  let b = Buffer.from(src);
  const op = rng.weighted([
    [5, 'flip'],
    [3, 'bitflip'],
    [4, 'truncate'],
    [2, 'dupChunk'],
    [2, 'delChunk'],
    [2, 'insertGarbage'],
    [2, 'append'],
    [2, 'interesting'],
    [1, 'splice'],
    [1, 'garbage'],
    [1, 'zeroRun'],
  ]);
  const pos = () => rng.int(0, Math.max(0, b.length - 1));
  // Header bytes matter most: half of the positions land in the first 1 KiB.
  const hpos = () => (rng.chance(0.5) ? rng.int(0, Math.min(b.length - 1, 1023)) : pos());
  switch (op) {
    case 'flip': {
      const k = rng.int(1, 16);
      for (let i = 0; i < k && b.length; i++) {
        const p = hpos();
        b[p] ^= rng.int(1, 255);
      }
      notes.push(`flip ${k} bytes`);
      break;
    }
    case 'bitflip': {
      const p = hpos();
      if (b.length) b[p] ^= 1 << rng.int(0, 7);
      notes.push(`bitflip @${p}`);
      break;
    }
    case 'truncate': {
      const n = rng.chance(0.3) ? rng.int(0, Math.min(b.length, 64)) : rng.int(0, b.length);
      b = b.subarray(0, n);
      notes.push(`truncate to ${n}`);
      break;
    }
    case 'dupChunk': {
      const s = pos(),
        l = rng.int(1, Math.min(4096, b.length - s || 1)),
        at = pos();
      b = Buffer.concat([b.subarray(0, at), b.subarray(s, s + l), b.subarray(at)]);
      notes.push(`dup [${s},+${l}) at ${at}`);
      break;
    }
    case 'delChunk': {
      const s = pos(),
        l = rng.int(1, Math.min(4096, b.length - s || 1));
      b = Buffer.concat([b.subarray(0, s), b.subarray(s + l)]);
      notes.push(`delete [${s},+${l})`);
      break;
    }
    case 'insertGarbage': {
      const at = hpos(),
        l = rng.int(1, 256);
      const g = Buffer.alloc(l);
      for (let i = 0; i < l; i++) g[i] = rng.int(0, 255);
      b = Buffer.concat([b.subarray(0, at), g, b.subarray(at)]);
      notes.push(`insert ${l} random bytes at ${at}`);
      break;
    }
    case 'append': {
      const l = rng.pick([1, 7, 100, 4096, 70000]);
      const g = Buffer.alloc(l, rng.chance(0.5) ? 0 : rng.int(0, 255));
      b = Buffer.concat([b, g]);
      notes.push(`append ${l} bytes`);
      break;
    }
    case 'interesting': {
      const k = rng.int(1, 4);
      for (let i = 0; i < k && b.length >= 4; i++) {
        const p = Math.min(hpos(), b.length - 4);
        if (rng.chance(0.5)) b.writeUInt32BE(rng.pick(INTERESTING32), p);
        else b.writeUInt16LE(rng.pick(INTERESTING16), p);
      }
      notes.push(`${k} interesting values`);
      break;
    }
    case 'splice': {
      const s = pos();
      const g = Buffer.alloc(rng.int(1, 2048));
      for (let i = 0; i < g.length; i++) g[i] = rng.int(0, 255);
      b = Buffer.concat([b.subarray(0, s), g]);
      notes.push(`tail from ${s} replaced by ${g.length} random bytes`);
      break;
    }
    case 'garbage': {
      const keep = rng.int(0, 16);
      const g = Buffer.alloc(rng.int(0, 3000));
      for (let i = 0; i < g.length; i++) g[i] = rng.int(0, 255);
      b = Buffer.concat([b.subarray(0, keep), g]);
      notes.push(`signature (${keep} bytes) + ${g.length} random bytes`);
      break;
    }
    case 'zeroRun': {
      const s = pos(),
        l = rng.int(1, 512);
      b.fill(0, s, Math.min(b.length, s + l));
      notes.push(`zero [${s},+${l})`);
      break;
    }
  }
  return b;
}

/**
 * Edits a dimension field in the image header. Returns the new bytes and, for PNG, the header's
 * new width × height (CRC recomputed or not) for the maxPixels oracle.
 */
function mutateHeader(rng, src, notes) {
  const b = Buffer.from(src);
  const dim = () =>
    rng.weighted([
      [3, rng.pick([0, 1, 2, 3, 7, 8, 255, 256, 65535])],
      [2, rng.pick([65536, 100000, 0x7fffffff, 0x80000000, 0xffffffff])],
      [3, rng.int(1, 2000)],
    ]);
  const dim16 = () => rng.pick([0, 1, 2, 3, 8, 255, 256, 4096, 16383, 16384, 32767, 65535, rng.int(1, 2000)]);
  if (b[0] === 0x89 && b.toString('latin1', 1, 4) === 'PNG') {
    const ihdr = pngChunks(b).find((c) => c.type === 'IHDR');
    if (!ihdr) return { bytes: b };
    const field = rng.pick(['w', 'h', 'wh', 'depth', 'ctype', 'interlace', 'compression']);
    if (field === 'w' || field === 'wh') b.writeUInt32BE(dim() >>> 0, ihdr.data);
    if (field === 'h' || field === 'wh') b.writeUInt32BE(dim() >>> 0, ihdr.data + 4);
    if (field === 'depth') b[ihdr.data + 8] = rng.pick([0, 1, 2, 3, 4, 8, 16, 32, 255]);
    if (field === 'ctype') b[ihdr.data + 9] = rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 255]);
    if (field === 'compression') b[ihdr.data + 10] = rng.int(1, 255);
    if (field === 'interlace') b[ihdr.data + 12] = rng.pick([0, 1, 2, 255]);
    const fixCrc = rng.chance(0.8);
    if (fixCrc) b.writeUInt32BE(crc32(b.subarray(ihdr.pos + 4, ihdr.data + 13)), ihdr.data + 13);
    notes.push(`PNG IHDR ${field} edit${fixCrc ? ' (CRC fixed)' : ''}`);
    return { bytes: b, png: fixCrc ? { w: b.readUInt32BE(ihdr.data), h: b.readUInt32BE(ihdr.data + 4) } : undefined };
  }
  if (b[0] === 0xff && b[1] === 0xd8) {
    // SOFn: FF C0..CF except C4, C8, CC; height at +5, width at +7 (big endian).
    const sofs = [];
    for (let p = 2; p + 9 < b.length; p++) {
      if (b[p] === 0xff && b[p + 1] >= 0xc0 && b[p + 1] <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(b[p + 1])) sofs.push(p);
    }
    if (!sofs.length) return { bytes: b };
    const p = sofs[0];
    const field = rng.pick(['h', 'w', 'ncomp', 'precision', 'sampling', 'marker']);
    if (field === 'h') b.writeUInt16BE(dim16(), p + 5);
    if (field === 'w') b.writeUInt16BE(dim16(), p + 7);
    if (field === 'ncomp') b[p + 9] = rng.pick([0, 1, 2, 3, 4, 5, 255]);
    if (field === 'precision') b[p + 4] = rng.pick([0, 1, 8, 12, 16, 255]);
    if (field === 'sampling' && p + 11 < b.length) b[p + 11] = rng.pick([0x00, 0x11, 0x22, 0x44, 0xff, 0x0f]);
    if (field === 'marker') b[p + 1] = rng.pick([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc9, 0xcb, 0xcf]);
    notes.push(`JPEG SOF ${field} edit`);
    return { bytes: b };
  }
  if (b.toString('latin1', 0, 4) === 'GIF8') {
    const field = rng.pick(['lsw', 'lsh', 'flags', 'imgw', 'imgh']);
    if (field === 'lsw') b.writeUInt16LE(dim16(), 6);
    if (field === 'lsh') b.writeUInt16LE(dim16(), 8);
    if (field === 'flags') b[10] = rng.int(0, 255);
    const desc = b.indexOf(0x2c, 13);
    if (desc > 0 && desc + 9 < b.length) {
      if (field === 'imgw') b.writeUInt16LE(dim16(), desc + 5);
      if (field === 'imgh') b.writeUInt16LE(dim16(), desc + 7);
    }
    notes.push(`GIF ${field} edit`);
    return { bytes: b };
  }
  if (b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') {
    const kind = b.toString('latin1', 12, 16);
    const field = rng.pick(['riffsize', 'chunksize', 'dims']);
    if (field === 'riffsize') b.writeUInt32LE(rng.pick(INTERESTING32) >>> 0, 4);
    if (field === 'chunksize') b.writeUInt32LE(rng.pick(INTERESTING32) >>> 0, 16);
    if (field === 'dims') {
      if (kind === 'VP8X' && b.length > 30) {
        b.writeUIntLE(rng.int(0, 0xffffff), 24, 3);
        b.writeUIntLE(rng.int(0, 0xffffff), 27, 3);
      } else if (kind === 'VP8 ' && b.length > 30) {
        b.writeUInt16LE(dim16(), 26);
        b.writeUInt16LE(dim16(), 28);
      } else if (b.length > 25) b.writeUInt32LE(rng.int(0, 0xffffffff) >>> 0, 21);
    }
    notes.push(`WebP ${kind} ${field} edit`);
    return { bytes: b };
  }
  const tiffLE = b.toString('latin1', 0, 4) === 'II*\0',
    tiffBE = b.toString('latin1', 0, 4) === 'MM\0*';
  if ((tiffLE || tiffBE) && b.length > 8) {
    const r16 = (p) => (tiffLE ? b.readUInt16LE(p) : b.readUInt16BE(p));
    const w16 = (v, p) => (tiffLE ? b.writeUInt16LE(v, p) : b.writeUInt16BE(v, p));
    const w32 = (v, p) => (tiffLE ? b.writeUInt32LE(v >>> 0, p) : b.writeUInt32BE(v >>> 0, p));
    const ifd = tiffLE ? b.readUInt32LE(4) : b.readUInt32BE(4);
    if (ifd + 2 > b.length) return { bytes: b };
    const n = r16(ifd);
    const entries = [];
    for (let i = 0; i < n && ifd + 2 + 12 * i + 12 <= b.length; i++) entries.push(ifd + 2 + 12 * i);
    if (!entries.length) return { bytes: b };
    const e = rng.pick(entries);
    const tag = r16(e);
    const what = rng.pick(['value', 'count', 'type']);
    if (what === 'value')
      w32(
        rng.weighted([
          [1, rng.pick(INTERESTING32)],
          [1, rng.int(0, 5000)],
        ]),
        e + 8,
      );
    if (what === 'count') w32(rng.pick(INTERESTING32), e + 4);
    if (what === 'type') w16(rng.int(0, 20), e + 2);
    notes.push(`TIFF tag ${tag} ${what} edit`);
    return { bytes: b };
  }
  return { bytes: b };
}

/** Where the IDAT data of a PNG ends (for the truncation oracle): [first IDAT data start, total IDAT bytes]. */
function pngIdat(b) {
  const idats = pngChunks(b).filter((c) => c.type === 'IDAT');
  if (!idats.length) return null;
  return {
    start: idats[0].data,
    total: idats.reduce((s, c) => s + c.len, 0),
    end: idats[idats.length - 1].data + idats[idats.length - 1].len,
  };
}

// ---------------------------------------------------------------------------------------------
// Case generators. A case: { cat, op, model, args (IPC-safe, tagged), expect, files{} }
//   expect.fail:    reason the input must be refused (success → wrong success)
//   expect.succeed: reason the input must be accepted (coded rejection → wrong rejection)
//   expect.finite:  when successful, every output value must be finite
// ---------------------------------------------------------------------------------------------

const WEIRD_NUMBERS = [0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e20, -0, 1e-300];
const WEIRD_VALUES = [
  ...WEIRD_NUMBERS,
  '3',
  '',
  null,
  true,
  false,
  [],
  {},
  [3],
  10n,
  { __fz: 'fn' },
  { __fz: 'sym' },
  { __fz: 'date' },
];

function isPosSafeInt(v) {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

/** Options for encode/preprocess/classify; returns { options, invalid?: reason, maxPixels }. */
function genDecodeOptions(rng, op) {
  const allowed = {
    encode: ['pooling', 'normalize', 'batchSize', 'maxPixels', 'maxBytes', 'interpolatePosEncoding'],
    preprocess: ['batchSize', 'maxPixels', 'maxBytes'],
    classify: ['topK', 'batchSize', 'maxPixels', 'maxBytes', 'interpolatePosEncoding'],
  }[op];
  if (rng.chance(0.25)) return { options: undefined, maxPixels: 100_000_000 };
  if (rng.chance(0.04)) {
    const v = rng.pick([null, 5, 'cls', true, { __fz: 'fn' }, [], ['x']]);
    const invalid = Array.isArray(v) && v.length === 0 ? undefined : 'options is not a plain options object';
    return { options: v, invalid, maxPixels: 100_000_000, opaque: true };
  }
  const o = {};
  const valid = {
    pooling: () => rng.pick(['cls', 'cls-prenorm', 'mean']),
    normalize: () => rng.chance(0.5),
    batchSize: () => rng.pick([1, 2, 3, 16, 4096]),
    maxPixels: () => rng.pick([1, 100, 1024, 5000, 100_000, 1e8, 2 ** 53 - 1]),
    maxBytes: () => rng.pick([1, 100, 5000, 1e6, 2 ** 53 - 1]),
    interpolatePosEncoding: () => rng.chance(0.5),
    topK: () => rng.pick([1, 2, 5, 100, 2 ** 53 - 1]),
  };
  for (const k of allowed) if (rng.chance(0.35)) o[k] = valid[k]();
  let invalid;
  if (rng.chance(0.3)) {
    const k = rng.pick([...allowed, 'unknownKey', 'device', 'topK', 'pooling']);
    if (!allowed.includes(k)) {
      o[k] = rng.pick(WEIRD_VALUES);
      invalid = `unknown option "${k}"`;
    } else {
      const bad = {
        // (null is not here for pooling / normalize / batchSize / topK: the library reads those with
        // `??`, so null means "the default" there; see the notes in bench/FUZZ-RESULTS.md.)
        pooling: ['CLS', 'max', '', 1, { __fz: 'sym' }],
        normalize: ['true', 1, 0],
        batchSize: [0, -1, 1.5, 4097, NaN, Infinity, '16', 2 ** 53, 10n],
        maxPixels: [0, -5, 1.5, NaN, Infinity, '1000', null, 2 ** 53, 10n],
        maxBytes: [0, -5, 1.5, NaN, Infinity, '1000', null, 2 ** 60],
        interpolatePosEncoding: ['yes', 1, null],
        topK: [0, -1, 1.5, NaN, '5', Infinity, 10n],
      }[k];
      o[k] = rng.pick(bad);
      invalid = `option ${k} = ${String(typeof o[k] === 'bigint' ? `${o[k]}n` : typeof o[k] === 'object' && o[k] ? JSON.stringify(o[k]) : o[k])}`;
    }
  }
  return {
    options: o,
    invalid,
    maxPixels: typeof o.maxPixels === 'number' ? o.maxPixels : 100_000_000,
    maxBytes: o.maxBytes,
  };
}

function randomBytes(rng, n) {
  const a = new Uint8Array(Number.isSafeInteger(n) && n > 0 ? n : 0);
  for (let i = 0; i < a.length; i++) a[i] = rng.int(0, 255);
  return a;
}

/** A raw-pixel image, possibly broken; returns { value, invalid?, pixels }. */
function genRaw(rng, maxPixels) {
  let w = rng.int(1, 48),
    h = rng.int(1, 48),
    c = rng.int(1, 4);
  let data = randomBytes(rng, w * h * c);
  const raw = { data, width: w, height: h, channels: c };
  const notes = [];
  const k = rng.chance(0.35) ? 0 : rng.int(1, 2);
  for (let i = 0; i < k; i++) {
    const what = rng.pick([
      'width',
      'height',
      'channels',
      'dataType',
      'dataLength',
      'missing',
      'extraKey',
      'dims',
      'sab',
      'view',
      'detached',
      'clamped',
    ]);
    notes.push(what);
    if (what === 'width' || what === 'height') raw[what] = rng.pick([...WEIRD_VALUES, rng.int(1, 48), 1e6, 2 ** 31]);
    if (what === 'channels') raw.channels = rng.pick([0, 5, 3.5, '3', NaN, null, -1, 1, 2, 3, 4]);
    if (what === 'dims' && ArrayBuffer.isView(raw.data)) {
      // consistent but unusual sizes
      raw.width = rng.pick([1, 2, 7, 1000, 3000]);
      raw.height = rng.pick([1, 3, 5, 1000]);
      raw.data = randomBytes(rng, Math.min(raw.width * raw.height * raw.channels, 4_000_000));
    }
    if (what === 'dataType') {
      const n = Math.min(ArrayBuffer.isView(raw.data) ? raw.data.length : w * h * c, 4_000_000);
      raw.data = rng.pick([
        new Uint16Array(n),
        new Int8Array(n),
        new Float32Array(n),
        Array.from({ length: Math.min(n, 64) }, () => 1),
        'pixels',
        null,
        undefined,
        { __fz: 'dataview', data: new Uint8Array(n) },
        { __fz: 'arraybuffer', data: new Uint8Array(n) },
        12,
      ]);
    }
    if (what === 'dataLength' && ArrayBuffer.isView(raw.data)) {
      const n = Math.max(0, raw.data.length + rng.pick([-1, 1, -raw.data.length, 7, 1000, -3]));
      raw.data = randomBytes(rng, n);
    }
    if (what === 'missing') delete raw[rng.pick(['data', 'width', 'height', 'channels'])];
    if (what === 'extraKey') raw[rng.pick(['format', 'stride', 'depth', 'premultiplied'])] = rng.pick(WEIRD_VALUES);
    if (what === 'clamped' && raw.data instanceof Uint8Array) raw.data = new Uint8ClampedArray(raw.data);
    if (what === 'sab' && raw.data instanceof Uint8Array) raw.data = { __fz: 'sab', data: raw.data };
    if (what === 'view' && raw.data instanceof Uint8Array)
      raw.data = { __fz: 'view', data: raw.data, pad: rng.int(1, 9) };
    if (what === 'detached' && raw.data instanceof Uint8Array) raw.data = { __fz: 'detached', data: raw.data };
  }
  // The documented rules (lib/images.ts checkRaw): predict validity.
  const d = raw.data;
  const tag = d && typeof d === 'object' && typeof d.__fz === 'string' ? d.__fz : undefined;
  const isU8 =
    (d instanceof Uint8Array || d instanceof Uint8ClampedArray || tag === 'sab' || tag === 'view') &&
    tag !== 'detached';
  const len = tag ? d.data.length : d?.length;
  const { width: W, height: H, channels: C } = raw;
  let invalid;
  if (!('data' in raw)) invalid = 'no data key';
  else if (!isU8) invalid = 'data is not 8-bit (or detached)';
  else if (!(Number.isSafeInteger(W) && W >= 0 && Number.isSafeInteger(H) && H >= 0))
    invalid = 'width/height not non-negative integers';
  else if (W === 0 || H === 0) invalid = 'empty image';
  else if (![1, 2, 3, 4].includes(C)) invalid = 'channels not 1..4';
  else if (W * H > maxPixels) invalid = 'more pixels than maxPixels';
  else if (len !== W * H * C) invalid = 'data length does not match';
  return { value: raw, invalid, notes };
}

function genImageCase(rng, fx, id, tmp) {
  const op = rng.weighted([
    [70, 'encode'],
    [18, 'preprocess'],
    [12, 'classify'],
  ]);
  const model = op === 'classify' ? 'tiny-cls' : rng.pick(['tiny-s8', 'tiny-s8', 'tiny-mask']);
  const opt = genDecodeOptions(rng, op);
  const expect = { finite: true };
  const notes = [];
  const files = {};
  const nImages = rng.weighted([
    [80, 1],
    [15, 2],
    [5, 4],
  ]);
  const images = [];
  const mustFail = [];
  let allGood = true; // every image certainly decodes under these options
  for (let i = 0; i < nImages; i++) {
    const kind = rng.weighted([
      [40, 'bytes'],
      [12, 'path'],
      [22, 'raw'],
      [8, 'original'],
      [5, 'weird'],
      [8, 'header'],
    ]);
    const fixture = rng.weighted([
      [1, () => rng.pick(fx.images.slice(0, 4))],
      [6, () => rng.pick(fx.images.slice(4))],
    ])();
    if (kind === 'raw') {
      const r = genRaw(rng, opt.maxPixels);
      images.push(r.value);
      notes.push(`raw(${r.notes.join('+') || 'valid'})`);
      if (r.invalid) mustFail.push(`raw image ${i}: ${r.invalid}`);
      continue;
    }
    if (kind === 'weird') {
      allGood = false;
      const v = rng.pick([
        42,
        null,
        undefined,
        {},
        [],
        [[]],
        true,
        '',
        '/nonexistent/fz.png',
        path.join(FIX, 'images'),
        '/dev/null',
        '/dev/zero',
        new Uint16Array(10),
        new Float32Array(4),
        { __fz: 'arraybuffer', data: new Uint8Array(8) },
        { __fz: 'dataview', data: new Uint8Array(8) },
        { width: 2, height: 2, channels: 3 },
        { __fz: 'fn' },
        { __fz: 'sym' },
        { __fz: 'map' },
      ]);
      images.push(v);
      notes.push(
        `weird(${typeof v === 'string' ? JSON.stringify(v) : Object.prototype.toString.call(v)}${v?.__fz ? ` ${v.__fz}` : ''})`,
      );
      mustFail.push(`image ${i} is not an image input`);
      continue;
    }
    let bytes = fixture.bytes;
    if (kind === 'original') {
      // An unmutated fixture: must decode unless maxPixels / maxBytes refuse it.
      notes.push(`original(${fixture.name})`);
      const meta = fx.meta.get(fixture.name);
      if (meta.w * meta.h > opt.maxPixels)
        mustFail.push(`fixture ${fixture.name} has ${meta.w}x${meta.h} pixels > maxPixels ${opt.maxPixels}`);
      if (rng.chance(0.5)) {
        images.push(fixture.file);
        if (isPosSafeInt(opt.maxBytes) && bytes.length > opt.maxBytes)
          mustFail.push(`file of ${bytes.length} bytes > maxBytes ${opt.maxBytes}`);
      } else images.push(new Uint8Array(bytes));
      continue;
    }
    allGood = false;
    const mut = [];
    if (kind === 'header') {
      const h = mutateHeader(rng, bytes, mut);
      bytes = h.bytes;
      if (h.png) {
        if (h.png.w === 0 || h.png.h === 0) mustFail.push(`PNG header says ${h.png.w}x${h.png.h}`);
        else if (h.png.w * h.png.h > opt.maxPixels)
          mustFail.push(`PNG header says ${h.png.w}x${h.png.h} > maxPixels ${opt.maxPixels}`);
      }
      if (rng.chance(0.3)) bytes = mutateBytes(rng, bytes, mut);
    } else {
      const rounds = rng.weighted([
        [6, 1],
        [3, 2],
        [1, 4],
      ]);
      const isPng = bytes[0] === 0x89 && bytes.toString('latin1', 1, 4) === 'PNG';
      for (let r = 0; r < rounds; r++) bytes = mutateBytes(rng, bytes, mut);
      // A PNG cut before half of its pixel data (a truncation and nothing else) must not decode.
      if (isPng && rounds === 1 && /^truncate to \d+$/.test(mut[0])) {
        const idat = pngIdat(fixture.bytes);
        if (idat && bytes.length < idat.start + idat.total / 2)
          mustFail.push(`PNG truncated to ${bytes.length} bytes, before half of its pixel data`);
      }
    }
    notes.push(`${kind}(${fixture.name}: ${mut.join(', ')})`);
    if (kind === 'path') {
      const f = path.join(tmp, `img-${id}-${i}.bin`);
      fs.writeFileSync(f, bytes);
      files[`img-${i}.bin`] = f;
      images.push(f);
    } else {
      images.push(new Uint8Array(bytes));
    }
  }
  if (opt.invalid) mustFail.push(opt.invalid);
  let imagesArg = images;
  if (nImages === 1 && rng.chance(0.3) && images[0] !== undefined && !Array.isArray(images[0])) imagesArg = images[0]; // a single input, not an array
  if (rng.chance(0.01)) {
    imagesArg = [];
    mustFail.push('empty image list');
  }
  if (mustFail.length) expect.fail = mustFail.join('; ');
  else if (allGood && !opt.opaque) expect.succeed = 'valid raw pixels / unmutated fixtures, valid options';
  return {
    cat: 'image',
    op,
    model,
    args: { images: imagesArg, options: opt.options },
    expect,
    notes: notes.join('; '),
    files,
  };
}

// ---- forward ---------------------------------------------------------------------------------

// The base models' shapes, from their config.json (mask token / labels: what the checkpoints hold).
const MODEL_SHAPES = Object.fromEntries(
  ['tiny-s8', 'tiny-cls', 'tiny-mask'].map((name) => {
    const c = JSON.parse(fs.readFileSync(path.join(FIX, 'goldens', name, 'config.json'), 'utf8'));
    return [
      name,
      {
        C: c.num_channels ?? 3,
        H: c.image_size,
        W: c.image_size,
        p: c.patch_size,
        L: c.num_hidden_layers,
        heads: c.num_attention_heads,
        D: c.hidden_size,
        mask: name === 'tiny-mask',
        labels: c.id2label ? Object.keys(c.id2label).length : 0,
      },
    ];
  }),
);

function genForwardCase(rng) {
  const model = rng.pick(Object.keys(MODEL_SHAPES));
  const m = MODEL_SHAPES[model];
  const interp = rng.chance(0.35);
  let B = rng.int(1, 3),
    C = m.C,
    H = m.H,
    W = m.W;
  if (interp) {
    H = rng.pick([1, 7, 8, 9, 13, 16, 17, 24, 31, 33, 40, 47, 64]);
    W = rng.pick([1, 7, 8, 9, 13, 16, 23, 32, 41, 64]);
  }
  const fail = [];
  const notes = [];
  let n = B * C * H * W;
  // pixel values
  let pixels = new Float32Array(n);
  for (let i = 0; i < n; i++) pixels[i] = rng.f() * 4 - 2;
  let finite = true;
  if (rng.chance(0.15)) {
    const v = rng.pick([NaN, Infinity, -Infinity, 3e38, -3e38, 1e30, 0]);
    const k = rng.int(1, 5);
    for (let i = 0; i < k; i++) pixels[rng.int(0, n - 1)] = v;
    if (!(Number.isFinite(v) && Math.abs(v) <= 1e3)) finite = false;
    notes.push(`${k} pixels = ${v}`);
  }
  let shape = [B, C, H, W];
  let px = pixels;
  // pixel container mutations
  const pm = rng.weighted([
    [60, 'none'],
    [6, 'length'],
    [6, 'type'],
    [4, 'sab'],
    [4, 'view'],
    [3, 'detached'],
    [3, 'channels'],
    [3, 'zeros'],
  ]);
  notes.push(`pixels:${pm}`);
  if (pm === 'length') {
    const len = Math.max(0, n + rng.pick([-1, 1, -n, 5]));
    px = new Float32Array(len);
    px.set(pixels.subarray(0, Math.min(n, len)));
  }
  if (pm === 'type') {
    px = rng.pick([
      new Float64Array(pixels),
      new Uint8Array(n),
      Array.from(pixels.subarray(0, 16)),
      null,
      undefined,
      'pixels',
      { __fz: 'dataview', data: new Uint8Array(4 * n) },
      { __fz: 'arraybuffer', data: new Uint8Array(4 * n) },
    ]);
    fail.push('pixelValues is not a Float32Array');
  }
  if (pm === 'sab') px = { __fz: 'sab', data: pixels };
  if (pm === 'view') px = { __fz: 'view', data: pixels, pad: rng.int(1, 7) };
  if (pm === 'detached') {
    px = { __fz: 'detached', data: pixels };
    fail.push('pixelValues detached');
  }
  if (pm === 'channels') {
    C = rng.pick([1, 2, 4]);
    n = B * C * H * W;
    px = new Float32Array(n).fill(0.5);
    shape = [B, C, H, W];
    fail.push(`${C} channels`);
  }
  if (pm === 'zeros') {
    px = new Float32Array(n);
  }
  // shape mutations
  if (rng.chance(0.15)) {
    const sm = rng.pick(['len', 'neg', 'zero', 'frac', 'nan', 'string', 'huge', 'notArray', 'bigint', 'swap']);
    notes.push(`shape:${sm}`);
    shape = [...shape];
    if (sm === 'len') shape = rng.chance(0.5) ? shape.slice(0, 3) : [...shape, 1];
    if (sm === 'neg') shape[rng.int(0, 3)] *= -1;
    if (sm === 'zero') shape[rng.int(0, 3)] = 0;
    if (sm === 'frac') shape[rng.int(0, 3)] += 0.5;
    if (sm === 'nan') shape[rng.int(0, 3)] = rng.pick([NaN, Infinity]);
    if (sm === 'string') shape[rng.int(0, 3)] = String(shape[0]);
    if (sm === 'huge') shape[rng.int(0, 3)] = rng.pick([2 ** 31, 2 ** 53 - 1, 2 ** 53, 1e6]);
    if (sm === 'notArray') shape = rng.pick([null, undefined, 4, 'B,C,H,W', { 0: B, 1: C, 2: H, 3: W, length: 4 }]);
    if (sm === 'bigint') shape[0] = BigInt(B);
    if (sm === 'swap') {
      const t = shape[2];
      shape[2] = shape[3];
      shape[3] = t;
    }
  }
  // options
  let options;
  const o = {};
  if (rng.chance(0.3)) o.outputHiddenStates = true;
  if (rng.chance(0.2)) o.outputAttentions = true;
  if (interp || rng.chance(0.1)) o.interpolatePosEncoding = interp;
  let headMaskFinite = true;
  if (rng.chance(0.2)) {
    const len = rng.weighted([
      [4, m.heads],
      [3, m.heads * m.L],
      [1, m.heads + 1],
      [1, 0],
      [1, m.L],
    ]);
    const hm = new Float32Array(len);
    for (let i = 0; i < len; i++) hm[i] = rng.pick([0, 1, 0.5, rng.f(), -1, 2]);
    if (rng.chance(0.15)) {
      hm[rng.int(0, Math.max(0, len - 1))] = rng.pick([NaN, Infinity, 1e38]);
      headMaskFinite = false;
    }
    o.headMask = rng.weighted([
      [8, hm],
      [1, new Float64Array(hm)],
      [1, Array.from(hm)],
      [1, { __fz: 'sab', data: hm }],
      [1, { __fz: 'detached', data: hm }],
      [1, null],
    ]);
    notes.push(`headMask[${len}]`);
  }
  const N = Math.floor(H / m.p) * Math.floor(W / m.p);
  if (rng.chance(model === 'tiny-mask' ? 0.4 : 0.08)) {
    const len = rng.weighted([
      [6, B * N],
      [1, N],
      [1, B * N + 1],
      [1, 0],
    ]);
    const bm = new Uint8Array(len);
    for (let i = 0; i < len; i++) bm[i] = rng.chance(0.4) ? 1 : 0;
    if (rng.chance(0.1) && len) bm[rng.int(0, len - 1)] = rng.pick([2, 255]);
    o.boolMaskedPos = rng.weighted([
      [8, bm],
      [1, new Int8Array(bm)],
      [1, { __fz: 'sab', data: bm }],
      [1, new Uint8ClampedArray(bm)],
      [1, Array.from(bm)],
      [1, { __fz: 'detached', data: bm }],
    ]);
    notes.push(`boolMaskedPos[${len}]`);
  }
  let optInvalid;
  if (rng.chance(0.12)) {
    const k = rng.pick(['outputHiddenStates', 'outputAttentions', 'interpolatePosEncoding', 'unknown', 'headmask']);
    o[k] = rng.pick(['true', 1, 0, null, { __fz: 'fn' }]);
    optInvalid = `option ${k} has a wrong type`;
  }
  options = o;
  if (rng.chance(0.05)) {
    options = rng.pick([null, 'opts', 7, ['x']]);
    optInvalid = 'options not an object';
  } else if (rng.chance(0.1) && !Object.keys(o).length) options = undefined;

  // ---- prediction (lib/validate.ts checkForward, the documented rules) ----
  const tag = (v) => (v && typeof v === 'object' && typeof v.__fz === 'string' ? v.__fz : undefined);
  const isShape = Array.isArray(shape) && shape.length === 4 && shape.every((d) => Number.isSafeInteger(d) && d > 0);
  if (!isShape) fail.push('shape is not 4 positive integers');
  else {
    const [b, c, h, w] = shape;
    const pxLen = tag(px) ? px.data.length : px?.length;
    if (b * c * h * w !== pxLen) fail.push('pixel count does not match the shape');
    if (c !== m.C) fail.push('channel count');
    if (!(o.interpolatePosEncoding === true && options === o) && (h !== m.H || w !== m.W))
      fail.push('size differs without interpolatePosEncoding');
    if (h < m.p || w < m.p) fail.push('smaller than a patch');
    const Np = Math.floor(h / m.p) * Math.floor(w / m.p);
    if (options === o && o.boolMaskedPos !== undefined) {
      const bm = o.boolMaskedPos;
      const t = tag(bm);
      const ok = (bm instanceof Uint8Array || t === 'sab') && t !== 'detached';
      const arr = t ? bm.data : bm;
      if (!ok) fail.push('boolMaskedPos not a live Uint8Array');
      else if (!m.mask) fail.push('no mask token');
      else if (arr.length !== b * Np) fail.push('boolMaskedPos length');
      else if (arr.some((v) => v > 1)) fail.push('boolMaskedPos value > 1');
    }
  }
  if (options === o && o.headMask !== undefined) {
    const hm = o.headMask;
    const t = tag(hm);
    const ok = (hm instanceof Float32Array || t === 'sab') && t !== 'detached';
    const len = t ? hm.data.length : hm?.length;
    if (!ok) fail.push('headMask not a live Float32Array');
    else if (len !== m.heads && len !== m.heads * m.L) fail.push('headMask length');
  }
  if (optInvalid) fail.push(optInvalid);
  const expect = { finite: finite && headMaskFinite };
  if (fail.length) expect.fail = fail.join('; ');
  else {
    expect.succeed = 'arguments valid per checkForward';
    const [b, , h, w] = shape;
    const T = 1 + Math.floor(h / m.p) * Math.floor(w / m.p);
    expect.forward = {
      B: b,
      T,
      D: m.D,
      L: m.L,
      heads: m.heads,
      labels: m.labels,
      hidden: o.outputHiddenStates === true,
      attn: o.outputAttentions === true,
    };
  }
  return {
    cat: 'forward',
    op: 'forward',
    model,
    args: { pixels: px, shape, options },
    expect,
    notes: `${model} [${Array.isArray(shape) ? shape.join(',') : String(shape)}] ${notes.join(', ')}`,
    files: {},
  };
}

// ---- model folders -----------------------------------------------------------------------------

function parseSafetensors(buf) {
  // The reference rules (Rust safetensors Metadata::validate + the engine's dtype list).
  const DT = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
  if (buf.length < 8) return { invalid: 'shorter than 8 bytes' };
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(buf.length - 8)) return { invalid: 'header length past the end' };
  const hl = Number(n);
  let header;
  const text = buf.subarray(8, 8 + hl);
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (e) {
    return { invalid: `header not JSON (${e.message.slice(0, 60)})` };
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    return { invalid: 'header not an object' };
  // Duplicate keys: JSON.parse keeps the last; the format forbids them (count raw occurrences is not
  // reliable, so duplicates simply make the oracle abstain).
  const dataSize = BigInt(buf.length - 8 - hl);
  const tensors = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (
        e === null ||
        typeof e !== 'object' ||
        Array.isArray(e) ||
        Object.values(e).some((v) => typeof v !== 'string')
      )
        return { invalid: '__metadata__ not a map of strings' };
      continue;
    }
    if (e === null || typeof e !== 'object' || Array.isArray(e)) return { invalid: `${name} not an object` };
    if (typeof e.dtype !== 'string' || !(e.dtype in DT)) return { invalid: `${name} dtype ${JSON.stringify(e.dtype)}` };
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      return { invalid: `${name} shape ${JSON.stringify(e.shape)}` };
    if (
      !Array.isArray(e.data_offsets) ||
      e.data_offsets.length !== 2 ||
      !e.data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)
    )
      return { invalid: `${name} data_offsets ${JSON.stringify(e.data_offsets)}` };
    const [b, en] = e.data_offsets.map(BigInt);
    if (b > en || en > dataSize) return { invalid: `${name} offsets outside the data` };
    const want = e.shape.reduce((a, d) => a * BigInt(d), BigInt(DT[e.dtype]));
    if (en - b !== want) return { invalid: `${name} offsets span ${en - b} bytes, shape needs ${want}` };
    tensors[name] = { dtype: e.dtype, shape: e.shape, begin: Number(b), end: Number(en) };
  }
  const order = Object.values(tensors).sort((x, y) => x.begin - y.begin || x.end - y.end);
  let covered = 0;
  for (const t of order) {
    if (t.begin !== covered) return { invalid: `data not tiled exactly at byte ${covered}` };
    covered = t.end;
  }
  if (BigInt(covered) !== dataSize) return { invalid: `data not tiled exactly (ends at ${covered} of ${dataSize})` };
  return {
    tensors,
    base: 8 + hl,
    maybeDuplicateKeys: /"([^"\\]+)"\s*:\s*\{[^{}]*\}[\s\S]*"\1"\s*:\s*\{/.test(text.toString('latin1')),
  };
}

const stripOnes = (s) => {
  const a = [...s];
  while (a.length && a[0] === 1) a.shift();
  return a.join(',');
};

/** For each required float tensor: all values finite and |v| ≤ 1e3 (so the forward cannot overflow). */
function tensorValuesModerate(buf, base, t) {
  const n = t.end - t.begin;
  const dv = new DataView(buf.buffer, buf.byteOffset + base + t.begin, n);
  const f16 = (h) => {
    const e = (h >> 10) & 31,
      f = h & 1023;
    if (e === 31) return f ? NaN : Infinity;
    return e ? (1 + f / 1024) * 2 ** (e - 15) : (f / 1024) * 2 ** -14;
  };
  for (let i = 0; i < n; ) {
    let v;
    if (t.dtype === 'F32') {
      v = dv.getFloat32(i, true);
      i += 4;
    } else if (t.dtype === 'F64') {
      v = Math.fround(dv.getFloat64(i, true));
      i += 8;
    } else if (t.dtype === 'F16') {
      v = f16(dv.getUint16(i, true));
      i += 2;
    } else if (t.dtype === 'BF16') {
      const u = new DataView(new ArrayBuffer(4));
      u.setUint16(2, dv.getUint16(i, true));
      v = u.getFloat32(0);
      i += 2;
    } else return true;
    if (!(Number.isFinite(v) && Math.abs(v) <= 1e3)) return false;
  }
  return true;
}

function zipEntries(b) {
  // Minimal ZIP central directory reader (torch.save writes stored, non-zip64 archives at this size).
  let eocd = -1;
  for (let p = b.length - 22; p >= Math.max(0, b.length - 65557); p--)
    if (b.readUInt32LE(p) === 0x06054b50) {
      eocd = p;
      break;
    }
  if (eocd < 0) return null;
  const count = b.readUInt16LE(eocd + 10);
  let p = b.readUInt32LE(eocd + 16);
  const out = [];
  for (let i = 0; i < count; i++) {
    if (b.readUInt32LE(p) !== 0x02014b50) return null;
    const size = b.readUInt32LE(p + 20),
      nl = b.readUInt16LE(p + 28),
      xl = b.readUInt16LE(p + 30),
      cl = b.readUInt16LE(p + 32),
      lho = b.readUInt32LE(p + 42);
    const name = b.toString('utf8', p + 46, p + 46 + nl);
    const start = lho + 30 + b.readUInt16LE(lho + 26) + b.readUInt16LE(lho + 28);
    out.push({ name, start, end: start + size });
    p += 46 + nl + xl + cl;
  }
  return out;
}

const MODEL_BASES = [
  {
    name: 'tiny-s8',
    dir: path.join(FIX, 'goldens', 'tiny-s8'),
    files: ['config.json', 'model.safetensors'],
    kind: 'st',
    optional: [],
  },
  {
    name: 'tiny-cls',
    dir: path.join(FIX, 'goldens', 'tiny-cls'),
    files: ['config.json', 'model.safetensors'],
    kind: 'st',
    optional: ['classifier.weight', 'classifier.bias'],
  },
  {
    name: 'tiny-mask',
    dir: path.join(FIX, 'goldens', 'tiny-mask'),
    files: ['config.json', 'model.safetensors'],
    kind: 'st',
    optional: ['embeddings.mask_token'],
  },
  {
    name: 'bin/tiny-cls',
    dir: path.join(FIX, 'bin', 'tiny-cls'),
    files: ['config.json', 'pytorch_model.bin'],
    kind: 'bin',
    dtype: 'f32',
  },
  {
    name: 'bin/tiny-mask-f64',
    dir: path.join(FIX, 'bin', 'tiny-mask-f64'),
    files: ['config.json', 'pytorch_model.bin'],
    kind: 'bin',
    dtype: 'f64',
  },
  {
    name: 'bin/tiny-s8-sharded',
    dir: path.join(FIX, 'bin', 'tiny-s8-sharded'),
    files: [
      'config.json',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
      'pytorch_model.bin.index.json',
    ],
    kind: 'sharded',
  },
];

const CONFIG_FIELDS = [
  'hidden_size',
  'num_hidden_layers',
  'num_attention_heads',
  'intermediate_size',
  'image_size',
  'patch_size',
  'num_channels',
  'layer_norm_eps',
  'hidden_act',
  'qkv_bias',
  'id2label',
  'num_labels',
  'label2id',
  'architectures',
  'model_type',
];

function mutateConfig(rng, cfg, notes) {
  const c = structuredClone(cfg);
  const k = rng.int(1, 2);
  const changed = [];
  for (let i = 0; i < k; i++) {
    const f = rng.pick(CONFIG_FIELDS);
    const how = rng.pick(['delete', 'retype', 'extreme', 'near', 'pair']);
    changed.push(f);
    if (how === 'delete') delete c[f];
    if (how === 'retype') c[f] = rng.pick(['32', null, true, [], {}, [32], 32.5, -32, 0]);
    if (how === 'extreme') c[f] = rng.pick([2 ** 31, 2 ** 53, 1e308, 1e-300, 2 ** 63, -1, 0, 65536, 1]);
    if (how === 'near')
      c[f] = typeof cfg[f] === 'number' ? cfg[f] + rng.pick([-1, 1, 8, -8, cfg[f]]) : rng.pick([1, 2, 3, 4, 8, 16, 64]);
    if (how === 'pair')
      c[f] = rng.pick([[cfg[f], cfg[f]], [cfg[f], cfg[f] + 8], [cfg[f]], [cfg[f], cfg[f], 1], [16, 32]]);
    if (f === 'id2label' && rng.chance(0.5))
      c.id2label = Object.fromEntries(
        Array.from({ length: rng.pick([0, 1, 4, 5, 6, 1000]) }, (_, j) => [String(j), `l${j}`]),
      );
    notes.push(`config.${f} ${how} → ${JSON.stringify(c[f])?.slice(0, 60)}`);
  }
  return { cfg: c, changed };
}

/** Whether a mutated config certainly cannot match the unchanged checkpoint (HF would refuse to load it). */
function configMustFail(orig, c, base) {
  const isInt = (v) => Number.isSafeInteger(v) && v > 0;
  const pair = (v) => (Array.isArray(v) && v.length === 2 ? v : [v, v]);
  // Only a valid config (by lib/config.ts's rules) can mismatch the weights; invalid ones fail anyway.
  for (const f of ['hidden_size', 'intermediate_size', 'num_channels']) {
    if (f in c && isInt(c[f]) && c[f] !== orig[f]) return `${f} ${c[f]} ≠ the checkpoint's ${orig[f]}`;
  }
  if (isInt(c.num_hidden_layers) && c.num_hidden_layers > orig.num_hidden_layers)
    return `num_hidden_layers ${c.num_hidden_layers} > the checkpoint's ${orig.num_hidden_layers}`;
  const [ph, pw] = pair(c.patch_size);
  if (isInt(ph) && ph === pw && ph !== orig.patch_size) return `patch_size ${ph} ≠ ${orig.patch_size}`;
  const [ih, iw] = pair(c.image_size);
  if (isInt(ih) && isInt(iw) && isInt(ph) && ph === pw) {
    const tokens = Math.floor(ih / ph) * Math.floor(iw / ph);
    const origTokens = Math.floor(orig.image_size / orig.patch_size) ** 2;
    if (tokens !== origTokens && ih >= ph && iw >= ph)
      return `image_size ${ih}x${iw} gives ${tokens} patches, the position table has ${origTokens}`;
  }
  if (
    base.optional?.includes('classifier.weight') &&
    c.id2label &&
    typeof c.id2label === 'object' &&
    !Array.isArray(c.id2label)
  ) {
    const nl = Object.keys(c.id2label).length;
    if (nl > 0 && nl !== Object.keys(orig.id2label).length)
      return `id2label has ${nl} labels, the classifier ${Object.keys(orig.id2label).length}`;
  }
  return undefined;
}

function genModelCase(rng, id, tmp) {
  const base = rng.weighted([
    [4, MODEL_BASES[0]],
    [3, MODEL_BASES[1]],
    [2, MODEL_BASES[2]],
    [3, MODEL_BASES[3]],
    [1, MODEL_BASES[4]],
    [1, MODEL_BASES[5]],
  ]);
  const dir = path.join(tmp, `model-${id}`);
  fs.mkdirSync(dir, { recursive: true });
  const contents = {};
  for (const f of base.files) contents[f] = fs.readFileSync(path.join(base.dir, f));
  const origCfg = JSON.parse(contents['config.json']);
  const notes = [base.name];
  const fail = [];
  let finite = true;
  let configChanged = false,
    weightsChanged = false;
  const target = rng.weighted([
    [30, 'config'],
    [base.kind === 'st' ? 30 : 0, 'stHeader'],
    [base.kind === 'st' ? 12 : 0, 'stBytes'],
    [base.kind !== 'st' ? 30 : 0, 'bin'],
    [8, 'misc'],
    [6, 'preprocessor'],
    [3, 'none'],
  ]);
  if (target === 'config') {
    configChanged = true;
    if (rng.chance(0.15)) {
      const text = contents['config.json'].toString();
      const bytes = mutateBytes(rng, Buffer.from(text), notes);
      contents['config.json'] = bytes;
      let parsed;
      try {
        parsed = JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
      } catch {
        fail.push('config.json is not JSON');
      }
      if (parsed !== undefined && (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)))
        fail.push('config.json is not an object');
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        const why = configMustFail(origCfg, parsed, base);
        if (why) fail.push(why);
      }
      finite = false; // eps or other numbers may have changed arbitrarily
    } else {
      const { cfg, changed } = mutateConfig(rng, origCfg, notes);
      contents['config.json'] = Buffer.from(JSON.stringify(cfg, null, rng.chance(0.5) ? 2 : 0));
      const why = configMustFail(origCfg, cfg, base);
      if (why) fail.push(why);
      if (changed.includes('layer_norm_eps')) finite = false;
    }
  } else if (target === 'stHeader' || target === 'stBytes') {
    weightsChanged = true;
    const st = contents['model.safetensors'];
    const n = Number(st.readBigUInt64LE(0));
    const header = JSON.parse(st.subarray(8, 8 + n).toString());
    let out;
    if (target === 'stHeader') {
      const how = rng.pick([
        'entry',
        'entry',
        'entry',
        'lenprefix',
        'json',
        'rename',
        'delete',
        'metadata',
        'swapOffsets',
        'truncate',
      ]);
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      const name = rng.pick(names);
      const h = structuredClone(header);
      let rawHeader;
      let lenDelta = 0;
      let truncateTo;
      if (how === 'entry') {
        const field = rng.pick(['dtype', 'shape', 'data_offsets']);
        const e = h[name];
        if (field === 'dtype')
          e.dtype = rng.pick(['F16', 'BF16', 'F64', 'I32', 'U8', 'BOOL', 'F8_E4M3', 'U32', 'f32', '', 5, null]);
        if (field === 'shape')
          e.shape = rng.pick([
            [...e.shape].reverse(),
            [...e.shape, 1],
            [1, ...e.shape],
            e.shape.slice(1),
            [],
            [0],
            [-1],
            [e.shape[0] + 1, ...e.shape.slice(1)],
            [2 ** 62, 4],
            [1.5],
            'x',
            null,
            [2 ** 53],
          ]);
        if (field === 'data_offsets') {
          const [b0, e0] = e.data_offsets;
          e.data_offsets = rng.pick([
            [b0, e0 + 4],
            [b0 + 4, e0],
            [b0 - 4, e0 - 4],
            [e0, b0],
            [b0, 2 ** 62],
            [0, e0 - b0],
            [b0],
            [b0, e0, 0],
            [-1, e0],
            [b0, 2 ** 64],
            [`${b0}`, e0],
            [b0 + 0.5, e0],
          ]);
        }
        notes.push(`'${name}'.${field} → ${JSON.stringify(e[field])}`);
      }
      if (how === 'rename') {
        h[`${name}_fz`] = h[name];
        delete h[name];
        notes.push(`rename '${name}'`);
      }
      if (how === 'delete') {
        // delete the entry and its bytes: offsets of the others shift
        const [b0, e0] = h[name].data_offsets;
        delete h[name];
        for (const e of Object.values(h))
          if (e.data_offsets && e.data_offsets[0] >= e0) {
            e.data_offsets = [e.data_offsets[0] - (e0 - b0), e.data_offsets[1] - (e0 - b0)];
          }
        const data = st.subarray(8 + n);
        out = { cut: [b0, e0], data };
        notes.push(`delete '${name}' (entry and bytes)`);
      }
      if (how === 'metadata') {
        h.__metadata__ = rng.pick([{ format: 5 }, [], 'pt', { format: 'pt', extra: null }, {}, { format: 'np' }]);
        notes.push(`__metadata__ → ${JSON.stringify(h.__metadata__)}`);
      }
      if (how === 'swapOffsets') {
        const same = names.filter(
          (x) =>
            x !== name &&
            header[x].data_offsets[1] - header[x].data_offsets[0] ===
              header[name].data_offsets[1] - header[name].data_offsets[0],
        );
        if (same.length) {
          const o2 = rng.pick(same);
          [h[name].data_offsets, h[o2].data_offsets] = [h[o2].data_offsets, h[name].data_offsets];
          notes.push(`swap offsets '${name}' '${o2}'`);
        }
      }
      if (how === 'json') {
        rawHeader = Buffer.from(JSON.stringify(h));
        rawHeader = mutateBytes(rng, rawHeader, notes);
      }
      if (how === 'lenprefix') {
        lenDelta = rng.pick([-1, 1, -8, 8, -3, 100, -n, 2 ** 32, -100]);
        notes.push(`length prefix ${lenDelta > 0 ? '+' : ''}${lenDelta}`);
      }
      if (how === 'truncate') {
        truncateTo = rng.int(0, st.length - 1);
        notes.push(`truncate to ${truncateTo}`);
      }
      let hb = rawHeader ?? Buffer.from(JSON.stringify(h));
      if (!rawHeader) hb = Buffer.concat([hb, Buffer.alloc((8 - (hb.length % 8)) % 8, 0x20)]);
      let data = st.subarray(8 + n);
      if (out?.cut) data = Buffer.concat([data.subarray(0, out.cut[0]), data.subarray(out.cut[1])]);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(Math.max(0, hb.length + lenDelta)));
      let file = Buffer.concat([len, hb, data]);
      if (truncateTo !== undefined) file = file.subarray(0, truncateTo);
      contents['model.safetensors'] = file;
    } else {
      // raw byte mutations anywhere (header or data)
      const inData = rng.chance(0.6);
      if (inData) {
        const b = Buffer.from(st);
        const k = rng.int(1, 8);
        for (let i = 0; i < k; i++) b[rng.int(8 + n, b.length - 1)] ^= rng.int(1, 255);
        notes.push(`flip ${k} data bytes`);
        contents['model.safetensors'] = b;
      } else {
        contents['model.safetensors'] = mutateBytes(rng, st, notes);
      }
    }
    // Oracles from the reference rules (config unchanged).
    const p = parseSafetensors(contents['model.safetensors']);
    if (p.invalid) fail.push(`safetensors invalid: ${p.invalid}`);
    else if (!p.maybeDuplicateKeys) {
      const origP = parseSafetensors(st);
      for (const [name, t] of Object.entries(origP.tensors)) {
        if (base.optional.includes(name)) continue;
        const m = p.tensors[name];
        if (!m) {
          fail.push(`required tensor '${name}' missing`);
          break;
        }
        if (stripOnes(m.shape) !== stripOnes(t.shape)) {
          fail.push(`'${name}' has shape [${m.shape}] instead of [${t.shape}]`);
          break;
        }
        if (!['F32', 'F16', 'BF16', 'F64'].includes(m.dtype)) {
          fail.push(`'${name}' has dtype ${m.dtype}`);
          break;
        }
      }
      if (!fail.length) {
        for (const t of Object.values(p.tensors))
          if (!tensorValuesModerate(contents['model.safetensors'], p.base, t)) {
            finite = false;
            break;
          }
      }
    } else finite = false;
  } else if (target === 'bin') {
    weightsChanged = true;
    const binFiles = base.files.filter((f) => f.endsWith('.bin'));
    const f = rng.pick(binFiles);
    const orig = contents[f];
    const how = rng.weighted([
      [4, 'flip'],
      [3, 'truncate'],
      [2, 'generic'],
      [1, 'index'],
    ]);
    if (how === 'flip') {
      const b = Buffer.from(orig);
      const k = rng.int(1, 8);
      const entries = zipEntries(orig) ?? [];
      const data = entries.filter((e) => /\/data\/\d+$/.test(e.name));
      const dataOnly = rng.chance(0.5) && data.length;
      let allInData = true;
      const words = new Set();
      const elem = base.dtype === 'f64' ? 8 : 4;
      for (let i = 0; i < k; i++) {
        let pos;
        if (dataOnly) {
          const e = rng.pick(data);
          pos = rng.int(e.start, Math.max(e.start, e.end - 1));
        } else pos = rng.int(0, b.length - 1);
        b[pos] ^= rng.int(1, 255);
        const e = data.find((x) => pos >= x.start && pos < x.end);
        if (!e) allInData = false;
        else words.add(e.start + Math.floor((pos - e.start) / elem) * elem);
      }
      notes.push(`${f}: flip ${k} bytes${allInData ? ' (all in tensor data)' : ''}`);
      contents[f] = b;
      if (allInData && base.dtype) {
        for (const w of words) {
          const v = base.dtype === 'f64' ? Math.fround(b.readDoubleLE(w)) : b.readFloatLE(w);
          if (!(Number.isFinite(v) && Math.abs(v) <= 1e3)) finite = false;
        }
      } else finite = false;
    } else if (how === 'truncate') {
      const n = rng.int(0, orig.length - 1);
      contents[f] = orig.subarray(0, n);
      notes.push(`${f}: truncate to ${n} of ${orig.length}`);
      fail.push('a truncated .bin (no ZIP end record) must be refused');
    } else if (how === 'generic') {
      contents[f] = mutateBytes(rng, orig, notes);
      finite = false;
    } else {
      const idx = 'pytorch_model.bin.index.json';
      if (contents[idx]) {
        const j = JSON.parse(contents[idx]);
        const keys = Object.keys(j.weight_map);
        const k = rng.pick(keys);
        const m = rng.pick(['missingFile', 'traversal', 'delete', 'type', 'self', 'abs']);
        if (m === 'missingFile') j.weight_map[k] = 'pytorch_model-00009-of-00002.bin';
        if (m === 'traversal') j.weight_map[k] = '../../../etc/passwd';
        if (m === 'abs') j.weight_map[k] = '/etc/passwd';
        if (m === 'delete') delete j.weight_map[k];
        if (m === 'type') j.weight_map[k] = rng.pick([5, null, [], {}]);
        if (m === 'self') j.weight_map[k] = idx;
        contents[idx] = Buffer.from(JSON.stringify(j));
        notes.push(`index: ${m} '${k}'`);
      } else {
        contents[f] = mutateBytes(rng, orig, notes);
      }
      finite = false;
    }
  } else if (target === 'misc') {
    const how = rng.pick(['noWeights', 'noConfig', 'weightsDir', 'emptyWeights', 'configDir', 'both', 'fifo']);
    notes.push(`misc ${how}`);
    const w = base.files.find((f) => f !== 'config.json');
    if (how === 'noWeights') {
      for (const f of base.files) if (f !== 'config.json') delete contents[f];
      fail.push('no weights');
    }
    if (how === 'noConfig') {
      delete contents['config.json'];
      fail.push('no config.json');
    }
    if (how === 'weightsDir') {
      for (const f of base.files) if (f !== 'config.json') delete contents[f];
      contents[`${base.kind === 'st' ? 'model.safetensors' : 'pytorch_model.bin'}/`] = null;
      fail.push('weights file is a directory');
    }
    if (how === 'emptyWeights') {
      contents[w] = Buffer.alloc(0);
      fail.push('empty weights file');
    }
    if (how === 'configDir') {
      delete contents['config.json'];
      contents['config.json/'] = null;
      fail.push('config.json is a directory');
    }
    if (how === 'both' && base.kind === 'st') {
      contents['pytorch_model.bin'] = Buffer.from('not a zip');
      notes.push('(safetensors wins)');
    }
    if (how === 'fifo') {
      for (const f of base.files) if (f !== 'config.json') delete contents[f];
      contents[`${base.kind === 'st' ? 'model.safetensors' : 'pytorch_model.bin'}|`] = null;
      fail.push('weights file is a FIFO');
    }
  } else if (target === 'preprocessor') {
    const pc = {
      do_resize: true,
      size: { height: origCfg.image_size, width: origCfg.image_size },
      resample: 2,
      do_rescale: true,
      rescale_factor: 1 / 255,
      do_normalize: true,
      image_mean: [0.485, 0.456, 0.406],
      image_std: [0.229, 0.224, 0.225],
    };
    const k = rng.pick(Object.keys(pc));
    pc[k] = rng.pick([null, 0, -1, 1e308, 'x', [], [0, 0, 0], { height: 0, width: 5 }, 224, 5, 2 ** 31, true, NaN]);
    const text = JSON.stringify(pc).replace('null', rng.chance(0.2) ? 'NaN' : 'null');
    contents['preprocessor_config.json'] = Buffer.from(text);
    notes.push(`preprocessor_config.${k} → ${JSON.stringify(pc[k])}`);
    // Loading needs the preprocessor only for images; no oracle beyond the forward below.
  }
  for (const [f, b] of Object.entries(contents)) {
    if (f.endsWith('/')) fs.mkdirSync(path.join(dir, f), { recursive: true });
    else if (f.endsWith('|')) execFileSync('mkfifo', [path.join(dir, f.slice(0, -1))]);
    else fs.writeFileSync(path.join(dir, f), b);
  }
  const options = { device: 'cpu', threads: 1 };
  if (rng.chance(0.1)) options.dtype = 'bfloat16';
  const expect = { finite: finite && (!configChanged || !weightsChanged) };
  if (fail.length) expect.fail = fail.join('; ');
  if (target === 'none') {
    notes.push('unmutated (control)');
    expect.succeed = 'unmutated fixture folder';
  }
  return {
    cat: 'model',
    op: 'load',
    model: base.name,
    args: { dir, options, batch: rng.int(1, 2), pixelSeed: rng.int(0, 2 ** 31) },
    expect,
    notes: notes.join(', '),
    files: { dir },
  };
}

// ---------------------------------------------------------------------------------------------
// Judging
// ---------------------------------------------------------------------------------------------

function judgeError(c, e, codes) {
  if (!e.vitmsn || !codes.has(e.code))
    return { verdict: 'uncoded', detail: `${e.name}${e.code ? ` (${e.code})` : ''}: ${e.message}` };
  if (e.code === 'ERR_INTERNAL')
    return { verdict: 'uncoded', detail: `ERR_INTERNAL (the library's "a bug: please report it"): ${e.message}` };
  if (c.expect.succeed && e.code !== 'ERR_OUT_OF_MEMORY')
    return { verdict: 'wrongReject', detail: `${e.code}: ${e.message} (expected success: ${c.expect.succeed})` };
  return { verdict: 'coded', code: e.code };
}

function judge(c, reply, codes) {
  if (!reply.ok) return judgeError(c, reply.error, codes);
  if (c.expect.fail) return { verdict: 'wrongSuccess', detail: `succeeded, but must fail: ${c.expect.fail}` };
  if (reply.result?.forwardError) return judgeError(c, reply.result.forwardError, codes);
  return judgeOutput(c, reply);
}

function judgeOutput(c, reply) {
  const r = reply.result;
  const problems = [];
  const checkT = (s, shape, what, mustBeFinite = c.expect.finite) => {
    if (!s || s.bad) return problems.push(`${what}: ${s?.bad ?? 'missing'}`);
    if (shape && JSON.stringify(s.shape) !== JSON.stringify(shape))
      problems.push(`${what}: shape [${s.shape}] ≠ [${shape}]`);
    if (s.length !== s.shape.reduce((a, b) => a * b, 1))
      problems.push(`${what}: ${s.length} values for shape [${s.shape}]`);
    if (mustBeFinite && !s.finite) problems.push(`${what}: non-finite values from finite inputs`);
    if (s.finite && s.inRange === false) problems.push(`${what}: values outside [${s.min}, ${s.max}]`);
  };
  if (c.op === 'encode') {
    const n = Array.isArray(c.args.images) ? c.args.images.length : 1;
    checkT(r, [n, r.D], 'embeddings');
    if (r.norms)
      for (const x of r.norms) if (!(Math.abs(x - 1) < 1e-3) && x !== 0) problems.push(`normalize: row norm ${x}`);
  } else if (c.op === 'preprocess') {
    const n = Array.isArray(c.args.images) ? c.args.images.length : 1;
    const S = MODEL_SHAPES[c.model].H;
    checkT(r, [n, 3, S, S], 'pixel_values');
  } else if (c.op === 'classify') {
    const n = Array.isArray(c.args.images) ? c.args.images.length : 1;
    const k = Math.min(c.args.options?.topK ?? 5, r.numLabels);
    if (!r.rows || r.rows.length !== n || r.rows.some((x) => x !== k))
      problems.push(`classify rows ${JSON.stringify(r.rows)}, expected ${n}×${k}`);
    problems.push(...r.problems);
  } else if (c.op === 'forward') {
    const f = c.expect.forward;
    checkT(r.last, [f.B, f.T, f.D], 'lastHiddenState');
    if (f.hidden) {
      if (r.hidden?.length !== f.L + 1) problems.push(`hiddenStates: ${r.hidden?.length} tensors`);
      else r.hidden.forEach((s, i) => checkT(s, [f.B, f.T, f.D], `hiddenStates[${i}]`));
    } else if (r.hidden) problems.push('hiddenStates returned without being asked');
    if (f.attn) {
      if (r.attn?.length !== f.L) problems.push(`attentions: ${r.attn?.length} tensors`);
      else r.attn.forEach((s, i) => checkT(s, [f.B, f.heads, f.T, f.T], `attentions[${i}]`));
    } else if (r.attn) problems.push('attentions returned without being asked');
    if (f.labels) checkT(r.logits, [f.B, f.labels], 'logits');
    else if (r.logits) problems.push('logits from a backbone');
  } else if (c.op === 'load') {
    if (r.loaded && !r.skippedForward) {
      let cfg;
      try {
        cfg = JSON.parse(fs.readFileSync(path.join(c.args.dir, 'config.json'), 'utf8').replace(/^\uFEFF/, ''));
      } catch {
        cfg = undefined;
      }
      if (cfg) {
        const pair = (v) => (Array.isArray(v) ? v : [v, v]);
        const [H, W] = pair(cfg.image_size);
        const [p] = pair(cfg.patch_size);
        const T = 1 + Math.floor(H / p) * Math.floor(W / p);
        checkT(r.last, [c.args.batch, T, cfg.hidden_size], 'lastHiddenState');
        if (r.logits) checkT(r.logits, [c.args.batch, r.numLabels], 'logits');
      } else problems.push('loaded although config.json is not JSON');
    }
  }
  if (problems.length) return { verdict: 'wrongSuccess', detail: problems.slice(0, 5).join('; ') };
  return { verdict: 'accepted' };
}

// ---------------------------------------------------------------------------------------------
// Child management
// ---------------------------------------------------------------------------------------------

class Runner {
  constructor(timeoutMs) {
    this.timeoutMs = timeoutMs;
    this.child = null;
    this.stderr = '';
  }

  async start() {
    this.stderr = '';
    const child = fork(fileURLToPath(import.meta.url), ['--child'], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.child = child;
    await new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (m?.ready) {
          child.off('message', onMsg);
          child.off('exit', onExit);
          resolve();
        }
      };
      const onExit = (code, sig) =>
        reject(new Error(`fuzz child died while starting (${code ?? sig}): ${this.stderr}`));
      child.on('message', onMsg);
      child.once('exit', onExit);
    });
  }

  /** → { reply } | { crash: {code, signal, stderr} } | { hang: true } */
  async run(c) {
    if (!this.child) await this.start();
    const child = this.child;
    return new Promise((resolve) => {
      let done = false;
      const finish = (v) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        child.off('message', onMsg);
        child.off('exit', onExit);
        resolve(v);
      };
      const onMsg = (m) => {
        if (m?.id === c.id) finish({ reply: m });
      };
      const onExit = (code, signal) => {
        this.child = null;
        setTimeout(() => finish({ crash: { code, signal, stderr: this.stderr.slice(-2000) } }), 50);
      };
      const timer = setTimeout(() => {
        this.child = null;
        child.off('exit', onExit);
        child.kill('SIGKILL');
        finish({ hang: true });
      }, this.timeoutMs);
      child.on('message', onMsg);
      child.once('exit', onExit);
      try {
        child.send({ id: c.id, op: c.op, model: c.model, args: c.args });
      } catch (e) {
        finish({ crash: { code: null, signal: null, stderr: `send failed: ${e.message}` } });
      }
    });
  }

  stop() {
    if (this.child) {
      this.child.kill('SIGKILL');
      this.child = null;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Saving failures
// ---------------------------------------------------------------------------------------------

function saveFailure(saveDir, c, verdict, detail) {
  const dir = path.join(saveDir, `${String(c.id).padStart(5, '0')}-${c.cat}-${verdict}`);
  fs.mkdirSync(dir, { recursive: true });
  const blobs = [];
  // Replace binary payloads with files next to case.json.
  const paths = new Map(
    Object.entries(c.files ?? {})
      .filter(([k]) => k !== 'dir')
      .map(([k, f]) => [f, k]),
  );
  const dump = (v, where) => {
    if (typeof v === 'string' && paths.has(v)) return { $path: paths.get(v) };
    if (ArrayBuffer.isView(v)) {
      const f = `blob-${blobs.length}.bin`;
      fs.writeFileSync(path.join(dir, f), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      blobs.push(f);
      return { $file: f, type: v.constructor.name, length: v.length };
    }
    if (typeof v === 'bigint') return { $bigint: String(v) };
    if (typeof v === 'number' && !Number.isFinite(v)) return { $number: String(v) };
    if (v === undefined) return { $undefined: true };
    if (Array.isArray(v)) return v.map((x, i) => dump(x, `${where}[${i}]`));
    if (v && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, dump(x, `${where}.${k}`)]));
    return v;
  };
  if (c.files?.dir) fs.cpSync(c.files.dir, path.join(dir, 'model'), { recursive: true });
  for (const [name, f] of Object.entries(c.files ?? {})) if (name !== 'dir') fs.copyFileSync(f, path.join(dir, name));
  const desc = {
    id: c.id,
    seed: c.seed,
    cat: c.cat,
    op: c.op,
    model: c.model,
    verdict,
    detail,
    notes: c.notes,
    expect: c.expect,
    args: dump(c.args, 'args'),
  };
  fs.writeFileSync(path.join(dir, 'case.json'), JSON.stringify(desc, null, 2));
  fs.writeFileSync(path.join(dir, 'repro.mjs'), reproScript(c, dir));
  return dir;
}

function reproScript(c, dir) {
  return `// ${c.cat} case ${c.id} (${c.notes})
// verdict: see case.json. Run: node ${path.join(dir, 'repro.mjs')}
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
const require = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))});
const vitmsn = require(${JSON.stringify(DIST)});
const here = ${JSON.stringify(dir)};
const desc = JSON.parse(fs.readFileSync(path.join(here, 'case.json'), 'utf8'));
// Rebuild arguments: binary payloads are in blob-N.bin files; special values are tagged.
function load(v) {
  if (Array.isArray(v)) return v.map(load);
  if (v && typeof v === 'object') {
    if ('$file' in v) { const b = fs.readFileSync(path.join(here, v.$file)); const T = globalThis[v.type] ?? Uint8Array; const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.length); return v.type === 'Buffer' ? b : new T(ab); }
    if ('$path' in v) return path.join(here, v.$path);
    if ('$bigint' in v) return BigInt(v.$bigint);
    if ('$number' in v) return Number(v.$number);
    if ('$undefined' in v) return undefined;
    if (typeof v.__fz === 'string') return revive({ ...v, data: load(v.data) });
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, load(x)]));
  }
  return v;
}
${revive.toString()}
const args = load(desc.args);
const FIX = ${JSON.stringify(path.join(FIX, 'goldens'))};
try {
  let r;
  if (desc.op === 'load') {
    const m = await vitmsn.loadModel(path.join(here, 'model'), args.options);
    const cfg = m.config;
    const [H, W] = Array.isArray(cfg.imageSize) ? cfg.imageSize : [cfg.imageSize, cfg.imageSize];
    const px = new Float32Array(args.batch * cfg.numChannels * H * W).map((_, i) => ((i * 7919) % 1000) / 250 - 2);
    r = await m.forward(px, [args.batch, cfg.numChannels, H, W]);
    await m.dispose();
  } else {
    const m = await vitmsn.loadModel(path.join(FIX, desc.model), { device: 'cpu', threads: 1 });
    r = desc.op === 'forward' ? await m.forward(args.pixels, args.shape, args.options) : await m[desc.op](args.images, args.options);
    await m.dispose();
  }
  console.log('resolved:', r);
} catch (e) {
  console.log('rejected:', e?.name, e?.code, e?.message);
}
`;
}

// ---------------------------------------------------------------------------------------------
// Main loop, table, record
// ---------------------------------------------------------------------------------------------

async function parentMain() {
  const opts = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(DIST)) usage('dist/index.js is missing: run npm run build first');
  const codes = knownCodes();
  const fx = loadFixtures();
  fx.meta = new Map();
  for (const im of fx.images) {
    const m = await fx.sharp(im.bytes, { limitInputPixels: false }).metadata();
    fx.meta.set(im.name, { w: m.width, h: m.height });
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `vitmsn-fuzz-${opts.seed}-`));
  const work = path.join(tmp, 'work');
  fs.mkdirSync(work);
  const saveDir = path.join(tmp, 'failures');
  const cats = ['image', 'model', 'forward'];
  const stats = Object.fromEntries(
    cats.map((k) => [
      k,
      { inputs: 0, coded: {}, accepted: 0, crash: 0, hang: 0, wrongSuccess: 0, wrongReject: 0, uncoded: 0 },
    ]),
  );
  const failures = [];
  const harnessErrors = [];
  const oracles = Object.fromEntries(cats.map((k) => [k, { mustFail: 0, mustSucceed: 0, finiteChecked: 0 }]));
  const runner = new Runner(opts.caseTimeout);
  const started = Date.now();
  const deadline = started + opts.seconds * 1000;
  process.on('SIGINT', () => {
    runner.stop();
    process.exit(130);
  });
  await runner.start();
  let i = 0;
  for (; Date.now() < deadline && i < opts.maxCases; i++) {
    const rng = new Rng(caseSeed(opts.seed, i));
    const cat = rng.weighted([
      [50, 'image'],
      [25, 'model'],
      [25, 'forward'],
    ]);
    let c;
    try {
      if (cat === 'image') c = genImageCase(rng, fx, i, work);
      else if (cat === 'model') c = genModelCase(rng, i, work);
      else c = genForwardCase(rng);
    } catch (e) {
      // a bug of this script, not of vitmsn: reported, and the run goes on
      harnessErrors.push(`case ${i} (${cat}): ${e.stack}`);
      console.error(`[harness error] case ${i} (${cat}): ${e.stack}`);
      continue;
    }
    c.id = i;
    c.seed = opts.seed;
    const out = await runner.run(c);
    const s = stats[cat];
    s.inputs++;
    if (c.expect.fail) oracles[cat].mustFail++;
    if (c.expect.succeed) oracles[cat].mustSucceed++;
    if (
      !c.expect.fail &&
      c.expect.finite &&
      !out.crash &&
      !out.hang &&
      out.reply.ok &&
      !out.reply.result?.forwardError &&
      !out.reply.result?.skippedForward
    )
      oracles[cat].finiteChecked++;
    let verdict, detail, code;
    if (out.crash) {
      verdict = 'crash';
      detail = `child exited (code ${out.crash.code}, signal ${out.crash.signal}): ${out.crash.stderr.trim().split('\n').slice(-6).join(' | ')}`;
    } else if (out.hang) {
      verdict = 'hang';
      detail = `no answer within ${opts.caseTimeout} ms`;
    } else ({ verdict, detail, code } = judge(c, out.reply, codes));
    if (verdict === 'coded') s.coded[code] = (s.coded[code] ?? 0) + 1;
    else if (verdict === 'accepted') s.accepted++;
    else {
      s[verdict]++;
      const where = saveFailure(saveDir, c, verdict, detail);
      failures.push({ id: i, cat, verdict, detail, notes: c.notes, where });
      console.error(`[${verdict}] case ${i} (${cat}/${c.op} ${c.notes}): ${detail}\n    saved: ${where}`);
    }
    if (!opts.keep) {
      for (const [k, f] of Object.entries(c.files ?? {})) fs.rmSync(f, { recursive: true, force: true });
    }
  }
  runner.stop();
  const secs = (Date.now() - started) / 1000;
  const table = formatTable(stats, cats) + '\n\n' + formatOracles(oracles, cats);
  const bad = failures.length + harnessErrors.length;
  const head = `vitmsn fuzz: seed ${opts.seed}, ${i} inputs in ${secs.toFixed(1)} s (budget ${opts.seconds} s, case timeout ${opts.caseTimeout} ms)`;
  console.log(head);
  console.log(table);
  console.log(`failures: ${failures.length}${failures.length ? ` (saved under ${saveDir})` : ''}`);
  if (harnessErrors.length)
    console.log(
      `harness errors (bugs of scripts/fuzz.mjs): ${harnessErrors.length}\n${harnessErrors.slice(0, 3).join('\n')}`,
    );
  for (const f of failures.slice(0, 20))
    console.log(
      `  - case ${f.id} ${f.cat} ${f.verdict}: ${f.detail.slice(0, 300)}\n    input: ${f.notes}\n    saved: ${f.where}`,
    );
  console.log(
    `FUZZ-SUMMARY ${JSON.stringify({ seed: opts.seed, inputs: i - harnessErrors.length, seconds: Number(secs.toFixed(1)), failures: failures.length, harnessErrors: harnessErrors.length, ...Object.fromEntries(['crash', 'hang', 'wrongSuccess', 'wrongReject', 'uncoded', 'accepted'].map((k) => [k, cats.reduce((a, c) => a + stats[c][k], 0)])), coded: cats.reduce((a, c) => a + Object.values(stats[c].coded).reduce((x, y) => x + y, 0), 0) })}`,
  );
  if (opts.record) record(opts, head, table, failures);
  if (!opts.keep && !bad) fs.rmSync(tmp, { recursive: true, force: true });
  else fs.rmSync(work, { recursive: true, force: true });
  process.exit(bad ? 1 : 0);
}

function formatOracles(oracles, cats) {
  const rows = [['category', 'must fail (certain)', 'must succeed (certain)', 'successes checked for finite output']];
  for (const c of cats) rows.push([c, oracles[c].mustFail, oracles[c].mustSucceed, oracles[c].finiteChecked]);
  const line = (r) => `| ${r.join(' | ')} |`;
  return [
    'Oracle coverage (inputs whose outcome was certain in advance):',
    '',
    line(rows[0]),
    line(rows[0].map(() => '---')),
    ...rows.slice(1).map(line),
  ].join('\n');
}

function formatTable(stats, cats) {
  const rows = [
    [
      'category',
      'inputs',
      'coded errors (by code)',
      'accepted',
      'crashes',
      'hangs',
      'wrong successes',
      'wrong rejections',
      'uncoded errors',
    ],
  ];
  const total = { inputs: 0, coded: {}, accepted: 0, crash: 0, hang: 0, wrongSuccess: 0, wrongReject: 0, uncoded: 0 };
  const codedStr = (m) => {
    const n = Object.values(m).reduce((a, b) => a + b, 0);
    return `${n}${
      n
        ? ` (${Object.entries(m)
            .sort((a, b) => b[1] - a[1])
            .map(([k, v]) => `${k.replace(/^ERR_/, '')} ${v}`)
            .join(', ')})`
        : ''
    }`;
  };
  for (const c of cats) {
    const s = stats[c];
    rows.push([c, s.inputs, codedStr(s.coded), s.accepted, s.crash, s.hang, s.wrongSuccess, s.wrongReject, s.uncoded]);
    for (const k of Object.keys(total)) {
      if (k === 'coded')
        for (const [code, n] of Object.entries(s.coded)) total.coded[code] = (total.coded[code] ?? 0) + n;
      else total[k] += s[k];
    }
  }
  rows.push([
    'total',
    total.inputs,
    codedStr(total.coded),
    total.accepted,
    total.crash,
    total.hang,
    total.wrongSuccess,
    total.wrongReject,
    total.uncoded,
  ]);
  const line = (r) => `| ${r.join(' | ')} |`;
  return [line(rows[0]), line(rows[0].map(() => '---')), ...rows.slice(1).map(line)].join('\n');
}

function record(opts, head, table, failures) {
  let cpu = 'unknown';
  try {
    const l = execFileSync('lscpu', { encoding: 'utf8' });
    const model = /^Model name:\s*(.+)$/m.exec(l)?.[1]?.trim();
    cpu = `${model ?? 'unknown CPU'}, ${os.cpus().length} logical CPUs (lscpu: ${/^CPU\(s\):\s*(.+)$/m.exec(l)?.[1]?.trim()} CPU(s), ${/^Core\(s\) per socket:\s*(.+)$/m.exec(l)?.[1]?.trim()} core(s) per socket)`;
  } catch {
    /* no lscpu */
  }
  const file = path.join(ROOT, 'bench', 'FUZZ-RESULTS.md');
  let text = fs.existsSync(file)
    ? fs.readFileSync(file, 'utf8')
    : '# Fuzzing results\n\nRuns of `scripts/fuzz.mjs` (seeded, time-bounded fuzzing of images, model folders and forward() arguments; see the header of the script for the categories and oracles). `--record` appends a section here.\n';
  const args = process.argv.slice(2).join(' ');
  text +=
    `\n## ${new Date().toISOString().slice(0, 10)}: seed ${opts.seed}, ${opts.seconds} s\n\n` +
    `- machine: ${cpu}; Node ${process.version}\n- command: \`node scripts/fuzz.mjs ${args}\`\n- ${head.replace(/^vitmsn fuzz: /, '')}\n\n${table}\n\n` +
    (failures.length
      ? `Failures:\n\n${failures.map((f) => `- case ${f.id} (${f.cat}, ${f.verdict}): ${f.detail.slice(0, 300)} — input: ${f.notes}`).join('\n')}\n`
      : 'No crashes, hangs, wrong successes, wrong rejections or uncoded errors.\n');
  fs.writeFileSync(file, text);
  console.log(`recorded in ${path.relative(ROOT, file)}`);
}

if (process.argv[2] === '--child') {
  await childMain();
} else {
  await parentMain();
}
