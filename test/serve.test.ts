// `vitmsn serve`: the HTTP server (lib/serve) on 127.0.0.1 port 0, driven with real fetch().
// Answers are checked bit for bit against model.encode()/classify() in this process, every error
// status is provoked, a client that leaves has its work removed from the queue, metrics count what
// happened (per server), and the CLI drains on SIGTERM.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { loadService, modelService, type EmbedService, type ServiceStats } from '../lib/serve/index';
import { gatedModel, metric, modelFolder, startServer, until, type Running } from './support/serve';
import { bmpBytes } from './support/png';

const FIX = path.join(__dirname, 'fixtures');
const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-serve-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

const file = (...p: string[]) => readFileSync(path.join(FIX, ...p));
const chelsea = file('images', 'chelsea.png');
const camera = file('images', 'camera.png');
const exif6 = file('pil', 'exif6.jpg');
const webp = file('pil', 'rgba.webp');
const gif = file('pil', 'anim.gif');

const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length &&
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function raw(
  url: string,
  body: Buffer,
  type = 'image/png',
  headers: Record<string, string> = {},
  signal?: AbortSignal,
) {
  return fetch(url, { method: 'POST', body, headers: { 'content-type': type, ...headers }, signal });
}
function json(url: string, body: unknown, signal?: AbortSignal) {
  return fetch(url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
    signal,
  });
}
function form(url: string, images: Buffer[], fields: Record<string, string> = {}) {
  const fd = new FormData();
  images.forEach((b, i) => fd.append(`image${i}`, new Blob([b]), `img${i}`));
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  return fetch(url, { method: 'POST', body: fd });
}
async function embeddings(res: Response): Promise<Float32Array> {
  expect(res.status).toBe(200);
  const body = (await res.json()) as { dim: number; data: Array<{ index: number; embedding: number[] }> };
  body.data.forEach((row, i) => expect(row.index).toBe(i));
  return Float32Array.from(body.data.flatMap((r) => r.embedding));
}
async function errorOf(res: Response, status: number, code: string): Promise<string> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
  if (status === 429 || status === 503) expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  return body.error.message;
}

describe('vitmsn serve: answers', () => {
  let s8: Model;
  let cls: Model;
  let server: Running;
  let clsServer: Running;
  beforeAll(async () => {
    const s8Dir = modelFolder(tmpRoot, 'tiny-s8', 32);
    const clsDir = modelFolder(tmpRoot, 'tiny-cls', 48);
    s8 = await loadModel(s8Dir, { device: 'cpu' });
    cls = await loadModel(clsDir, { device: 'cpu' });
    server = await startServer(loadService(s8Dir, { device: 'cpu' }), { disposeOnClose: true });
    clsServer = await startServer(await loadService(clsDir, { device: 'cpu' }), { disposeOnClose: true });
    await until(async () => (await fetch(`${server.url}/readyz`)).status === 200, 10_000, 'readyz');
  });
  afterAll(async () => {
    await server?.close();
    await clsServer?.close();
    await s8?.dispose();
    await cls?.dispose();
  });

  it('healthz, readyz', async () => {
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${server.url}/readyz`)).json()).toEqual({ status: 'ready', model: 'tiny-s8' });
  });

  it('one raw image (image/*, application/octet-stream) = model.encode(), bit for bit', async () => {
    expect(
      sameBits(await embeddings(await raw(`${server.url}/v1/embeddings`, chelsea)), (await s8.encode(chelsea)).data),
    ).toBe(true);
    const want = (await s8.encode(exif6, { pooling: 'mean', normalize: true })).data;
    const res = await raw(`${server.url}/v1/embeddings?pooling=mean&normalize=true`, exif6, 'application/octet-stream');
    expect(sameBits(await embeddings(res), want)).toBe(true);
  });

  it('multipart/form-data: each file part one image, in order; fields are options', async () => {
    const imgs = [chelsea, webp, gif, camera];
    const want = (await s8.encode(imgs, { pooling: 'cls-prenorm', normalize: true })).data;
    const got = await embeddings(
      await form(`${server.url}/v1/embeddings`, imgs, { pooling: 'cls-prenorm', normalize: 'true' }),
    );
    expect(sameBits(got, want)).toBe(true);
  });

  it('JSON {images: [base64]} with options in the body and the query (data: URIs too)', async () => {
    const imgs = [camera, exif6, gif];
    const b64 = imgs.map((b) => b.toString('base64'));
    b64[1] = `data:image/jpeg;base64,${b64[1]}`;
    const want = (await s8.encode(imgs, { pooling: 'mean' })).data;
    expect(
      sameBits(await embeddings(await json(`${server.url}/v1/embeddings`, { images: b64, pooling: 'mean' })), want),
    ).toBe(true);
    expect(
      sameBits(await embeddings(await json(`${server.url}/v1/embeddings?pooling=mean`, { images: b64 })), want),
    ).toBe(true);
    const res = await json(`${server.url}/v1/embeddings`, { images: b64, pooling: 'mean', normalize: false });
    expect((await res.json()) as object).toMatchObject({ model: 'tiny-s8', dim: 32 });
  });

  it('Accept: application/octet-stream answers little-endian float32 [N, D] with X-Shape', async () => {
    const imgs = [chelsea, camera];
    const res = await form(`${server.url}/v1/embeddings`, imgs).then(async () =>
      fetch(`${server.url}/v1/embeddings`, {
        method: 'POST',
        body: JSON.stringify({ images: imgs.map((b) => b.toString('base64')) }),
        headers: { 'content-type': 'application/json', accept: 'application/octet-stream' },
      }),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('x-shape')).toBe('2,32');
    const buf = Buffer.from(await res.arrayBuffer());
    const got = new Float32Array(buf.length / 4);
    for (let i = 0; i < got.length; i++) got[i] = buf.readFloatLE(i * 4);
    expect(sameBits(got, (await s8.encode(imgs)).data)).toBe(true);
    // JSON stays the answer when JSON is preferred or only wildcards are given
    const j = await raw(`${server.url}/v1/embeddings`, chelsea, 'image/png', {
      accept: 'application/json, application/octet-stream;q=0.5',
    });
    expect(j.headers.get('content-type')).toMatch(/application\/json/);
    expect(
      (await raw(`${server.url}/v1/embeddings`, chelsea, 'image/png', { accept: '*/*' })).headers.get('content-type'),
    ).toMatch(/json/);
  });

  it('POST /v1/classify: raw, multipart and JSON with top_k = model.classify()', async () => {
    const imgs = [chelsea, exif6, webp];
    const want = await cls.classify(imgs, { topK: 3 });
    const a = (await (await form(`${clsServer.url}/v1/classify`, imgs, { top_k: '3' })).json()) as {
      data: Array<{ index: number; predictions: unknown }>;
    };
    expect(a.data.map((d) => d.predictions)).toEqual(want);
    const b = (await (
      await json(`${clsServer.url}/v1/classify?top_k=3`, { images: imgs.map((x) => x.toString('base64')) })
    ).json()) as typeof a;
    expect(b.data.map((d) => d.predictions)).toEqual(want);
    const c = (await (await raw(`${clsServer.url}/v1/classify`, chelsea)).json()) as typeof a;
    expect(c.data).toEqual([{ index: 0, predictions: (await cls.classify(chelsea))[0] }]);
  });

  it('400: bad image, bad base64, URLs, bad options, bad JSON, no body', async () => {
    const u = `${server.url}/v1/embeddings`;
    expect(await errorOf(await raw(u, Buffer.from('not an image at all')), 400, 'ERR_IMAGE_INVALID')).toMatch(
      /image 0/,
    );
    await errorOf(await raw(u, chelsea.subarray(0, 200)), 400, 'ERR_IMAGE_INVALID');
    await errorOf(await raw(u, Buffer.alloc(0), 'image/jpeg'), 400, 'ERR_IMAGE_INVALID');
    await errorOf(await json(u, { images: ['!!!not base64!!!'] }), 400, 'ERR_IMAGE_INVALID');
    expect(
      await errorOf(await json(u, { images: ['https://example.com/cat.jpg'] }), 400, 'ERR_INVALID_ARGUMENT'),
    ).toMatch(/URLs is not supported/);
    await errorOf(await json(u, { images: [] }), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await json(u, { images: [1, 2] }), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await json(u, ['x']), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await json(u, { images: [chelsea.toString('base64')], top_k: 3 }), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await raw(`${u}?pooling=max`, chelsea), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await raw(`${u}?normalize=maybe`, chelsea), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await raw(`${u}?normalise=true`, chelsea), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await raw(`${clsServer.url}/v1/classify?top_k=0`, chelsea), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await raw(u, Buffer.from('{"images": ['), 'application/json'), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await fetch(u, { method: 'POST' }), 400, 'ERR_INVALID_ARGUMENT');
    await errorOf(await form(u, [], { pooling: 'cls' }), 400, 'ERR_INVALID_ARGUMENT');
  });

  it('415: unsupported content type or image format; 501: classify on a backbone; 404', async () => {
    await errorOf(
      await raw(`${server.url}/v1/embeddings`, Buffer.from('hello'), 'text/plain'),
      415,
      'ERR_UNSUPPORTED_MEDIA_TYPE',
    );
    await errorOf(
      await raw(`${server.url}/v1/embeddings`, Buffer.from('a=b'), 'application/x-www-form-urlencoded'),
      415,
      'ERR_UNSUPPORTED_MEDIA_TYPE',
    );
    await errorOf(await raw(`${server.url}/v1/embeddings`, bmpBytes(), 'image/bmp'), 415, 'ERR_IMAGE_UNSUPPORTED');
    await errorOf(await raw(`${server.url}/v1/classify`, chelsea), 501, 'ERR_NO_CLASSIFIER');
    await errorOf(await fetch(`${server.url}/v2/nothing`), 404, 'ERR_NOT_FOUND');
  });

  it('never crashes on junk: random bytes under every content type, broken multipart', async () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const types = [
      'image/png',
      'image/jpeg',
      'image/gif',
      'image/webp',
      'image/tiff',
      'image/avif',
      'application/octet-stream',
      'application/json',
      'multipart/form-data; boundary=xyz',
      'multipart/form-data',
    ];
    for (let i = 0; i < 40; i++) {
      const len = rnd() % 4000;
      const body = Buffer.alloc(len);
      for (let j = 0; j < len; j++) body[j] = rnd() & 0xff;
      // real headers with random tails, to get past the signature checks
      const heads = [chelsea, exif6, webp, gif];
      if (i % 2 === 0) heads[i % 4].copy(body, 0, 0, Math.min(len, 64));
      const res = await raw(`${server.url}/v1/embeddings`, body, types[i % types.length]);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(((await res.json()) as { error: { code: string } }).error.code).toMatch(/^ERR_/);
    }
    const broken = Buffer.from(
      '--xyz\r\nContent-Disposition: form-data; name="a"; filename="a.png"\r\n\r\n\x89PNG garbage',
    );
    const res = await raw(`${server.url}/v1/embeddings`, broken, 'multipart/form-data; boundary=xyz');
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe('vitmsn serve: limits and overload', () => {
  let s8: Model;
  let s8Dir: string;
  beforeAll(async () => {
    s8Dir = modelFolder(tmpRoot, 'tiny-s8', 32, 'limits');
    s8 = await loadModel(s8Dir, { device: 'cpu' });
  });
  afterAll(() => s8?.dispose());

  it('413: body over maxBodyBytes, more images than maxImages, more pixels than maxPixels', async () => {
    const srv = await startServer(modelService(s8), { maxBodyBytes: 1_000_000, maxImages: 2, maxPixels: 100_000 });
    try {
      const u = `${srv.url}/v1/embeddings`;
      await errorOf(await raw(u, Buffer.alloc(1_500_000, 1)), 413, 'ERR_BODY_TOO_LARGE');
      await errorOf(
        await json(u, { images: [Buffer.alloc(800_000, 1).toString('base64')] }),
        413,
        'ERR_BODY_TOO_LARGE',
      );
      await errorOf(await form(u, [Buffer.alloc(600_000, 1), Buffer.alloc(600_000, 2)]), 413, 'ERR_BODY_TOO_LARGE');
      await errorOf(await form(u, [Buffer.alloc(1_200_000, 1)]), 413, 'ERR_BODY_TOO_LARGE');
      await errorOf(
        await json(u, { images: [gif, gif, gif].map((b) => b.toString('base64')) }),
        413,
        'ERR_TOO_MANY_IMAGES',
      );
      await errorOf(await form(u, [gif, gif, gif]), 413, 'ERR_TOO_MANY_IMAGES');
      expect(await errorOf(await raw(u, chelsea), 413, 'ERR_IMAGE_TOO_LARGE')).toMatch(/pixel/); // 451x300 = 135300 > 100000
      expect((await raw(u, camera)).status).toBe(413); // 512x512
      expect((await raw(u, gif)).status).toBe(200); // small
    } finally {
      await srv.close();
    }
  });

  it('429: the queue is full (maxQueue images waiting), or maxConcurrent requests in progress; Retry-After', async () => {
    const g = await gatedModel(s8Dir, { maxQueue: 2, maxBatch: 1, maxDelayMs: 0 });
    const srv = await startServer(modelService(g.model), { maxConcurrent: 5 });
    try {
      const u = `${srv.url}/v1/embeddings`;
      g.shut();
      const first = raw(u, gif); // runs (held at the gate)
      await until(() => g.calls.length === 1);
      const waiting = [raw(u, gif), raw(u, webp)]; // 2 images waiting: the queue is full
      await until(() => srv.app.vitmsn.service!.stats().queuedImages === 2);
      await errorOf(await raw(u, camera), 429, 'ERR_OVERLOADED');
      const more = raw(u, gif); // 4 in progress, one more allowed by maxConcurrent... refused by the queue
      await errorOf(await more, 429, 'ERR_OVERLOADED');
      g.open();
      for (const r of [first, ...waiting]) expect((await r).status).toBe(200);
    } finally {
      g.open();
      await srv.close();
    }
    const g2 = await gatedModel(s8Dir);
    const srv2 = await startServer(modelService(g2.model), { maxConcurrent: 1 });
    try {
      g2.shut();
      const first = raw(`${srv2.url}/v1/embeddings`, gif);
      await until(() => g2.calls.length === 1);
      expect(await errorOf(await raw(`${srv2.url}/v1/embeddings`, gif), 429, 'ERR_OVERLOADED')).toMatch(
        /max-concurrent/,
      );
      expect((await fetch(`${srv2.url}/healthz`)).status).toBe(200); // not counted
      g2.open();
      expect((await first).status).toBe(200);
      expect((await raw(`${srv2.url}/v1/embeddings`, gif)).status).toBe(200);
    } finally {
      g2.open();
      await srv2.close();
    }
  });

  it("429 for the library's ERR_OVERLOADED, 500 for ERR_INTERNAL and unknown errors (a service that fails)", async () => {
    let fail: unknown;
    const stats: ServiceStats = {
      queuedImages: 0,
      queuedCalls: 0,
      maxQueue: 1024,
      batches: 0,
      images: 0,
      batchSizes: {},
      imagesPerSecond: 0,
      latencyMs: { p50: 0, p90: 0, p99: 0 },
    };
    const svc: EmbedService = {
      info: { name: 'x', dim: 4, numLabels: 0 },
      encode: async () => {
        throw fail;
      },
      classify: async () => [],
      stats: () => stats,
      queue: () => stats,
      dispose: async () => undefined,
    };
    const srv = await startServer(svc);
    try {
      fail = Object.assign(new Error('queue full'), { code: 'ERR_OVERLOADED' });
      await errorOf(await raw(`${srv.url}/v1/embeddings`, gif), 429, 'ERR_OVERLOADED');
      fail = Object.assign(new Error('bug'), { code: 'ERR_INTERNAL' });
      await errorOf(await raw(`${srv.url}/v1/embeddings`, gif), 500, 'ERR_INTERNAL');
      fail = new TypeError('undefined is not a function');
      await errorOf(await raw(`${srv.url}/v1/embeddings`, gif), 500, 'ERR_INTERNAL');
      fail = 'a string';
      await errorOf(await raw(`${srv.url}/v1/embeddings`, gif), 500, 'ERR_INTERNAL');
      expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
    } finally {
      await srv.close();
    }
  });

  it("504 when the server's deadline (timeoutMs) passes; the work leaves the queue", async () => {
    const g = await gatedModel(s8Dir);
    const srv = await startServer(modelService(g.model), { timeoutMs: 300 });
    try {
      g.shut();
      const a = raw(`${srv.url}/v1/embeddings`, gif);
      await until(() => g.calls.length === 1);
      const b = raw(`${srv.url}/v1/embeddings`, webp);
      await errorOf(await a, 504, 'ERR_TIMEOUT');
      await errorOf(await b, 504, 'ERR_TIMEOUT');
      g.open();
      await until(() => srv.app.vitmsn.service!.stats().batches === 1);
      expect(g.calls.length).toBe(1); // b never reached the model
      expect(srv.app.vitmsn.service!.stats().queuedImages).toBe(0);
    } finally {
      g.open();
      await srv.close();
    }
  });

  it('503 under pressure (heap limit) with Retry-After; health and metrics are not shed', async () => {
    const srv = await startServer(modelService(s8), { pressure: { maxHeapUsedBytes: 1 } });
    try {
      await until(async () => (await raw(`${srv.url}/v1/embeddings`, gif)).status === 503, 10_000, 'pressure');
      await errorOf(await raw(`${srv.url}/v1/embeddings`, gif), 503, 'ERR_UNDER_PRESSURE');
      expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${srv.url}/metrics`)).status).toBe(200);
    } finally {
      await srv.close();
    }
  });

  it('readyz is 503 while the model loads', async () => {
    let resolve!: (s: EmbedService) => void;
    const srv = await startServer(new Promise<EmbedService>((r) => (resolve = r)));
    try {
      await errorOf(await fetch(`${srv.url}/readyz`), 503, 'ERR_NOT_READY');
      await errorOf(await raw(`${srv.url}/v1/embeddings`, gif), 503, 'ERR_NOT_READY');
      expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
      resolve(modelService(s8));
      await until(async () => (await fetch(`${srv.url}/readyz`)).status === 200);
      expect((await raw(`${srv.url}/v1/embeddings`, gif)).status).toBe(200);
    } finally {
      await srv.close();
    }
  });

  it('drain(): readyz and new requests 503, requests in progress finish with 200', async () => {
    const g = await gatedModel(s8Dir);
    const srv = await startServer(modelService(g.model), { drainDelayMs: 500 });
    g.shut();
    // One request at the model, then one queued behind it (sent together, both would share a batch).
    const inFlight = [raw(`${srv.url}/v1/embeddings`, gif)];
    await until(() => g.calls.length === 1);
    inFlight.push(raw(`${srv.url}/v1/embeddings`, webp));
    await until(() => srv.app.vitmsn.service!.stats().queuedCalls === 1);
    const drained = srv.app.vitmsn.drain();
    await errorOf(await fetch(`${srv.url}/readyz`), 503, 'ERR_DRAINING');
    await errorOf(await raw(`${srv.url}/v1/embeddings`, gif), 503, 'ERR_DRAINING');
    g.open();
    for (const r of inFlight) expect((await r).status).toBe(200);
    await drained;
    await expect(fetch(`${srv.url}/healthz`)).rejects.toThrow();
  });
});

describe('vitmsn serve: cancellation and metrics', () => {
  let s8: Model;
  let s8Dir: string;
  beforeAll(async () => {
    s8Dir = modelFolder(tmpRoot, 'tiny-s8', 32, 'cancel');
    s8 = await loadModel(s8Dir, { device: 'cpu' });
  });
  afterAll(() => s8?.dispose());

  it('a client that disconnects while its request waits: 499, its images never reach the model', async () => {
    const g = await gatedModel(s8Dir, { maxBatch: 1, maxDelayMs: 0 });
    const srv = await startServer(modelService(g.model));
    try {
      const u = `${srv.url}/v1/embeddings`;
      g.shut();
      const busy = raw(u, gif); // the model is busy with this one
      await until(() => g.calls.length === 1);
      const acs = [new AbortController(), new AbortController(), new AbortController()];
      const left = acs.map((ac) => raw(u, camera, 'image/png', {}, ac.signal).catch((e: Error) => e));
      const stays = raw(u, webp);
      const svc = srv.app.vitmsn.service!;
      await until(() => svc.stats().queuedCalls === 4, 10_000, '4 queued');
      for (const ac of acs) ac.abort();
      for (const r of left) expect(((await r) as Error).name).toBe('AbortError');
      await until(() => svc.stats().queuedCalls === 1, 10_000, 'aborted calls leave the queue');
      expect(svc.stats().queuedImages).toBe(1);
      g.open();
      expect((await busy).status).toBe(200);
      expect((await stays).status).toBe(200);
      // the model saw gif and webp only: two batches of one image, none of the aborted ones
      expect(g.calls.map((c) => c.batch)).toEqual([1, 1]);
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      await until(
        async () =>
          metric(await (await fetch(`${srv.url}/metrics`)).text(), 'vitmsn_http_requests_total', {
            route: '/v1/embeddings',
            status: '499',
          }) === 3,
        5000,
        '499 counted',
      );
      expect(metric(text, 'vitmsn_http_errors_total', { code: 'ERR_CLIENT_CLOSED' })).toBe(3);
      expect(metric(text, 'vitmsn_images_total')).toBe(2);
    } finally {
      g.open();
      await srv.close();
    }
  });

  it('metrics count requests by route and status, errors by code, batches, images; two servers do not share them', async () => {
    // Two servers, each over its own model (model counts — images, batches — are the model's).
    const other = await loadModel(s8Dir, { device: 'cpu' });
    const a = await startServer(modelService(s8));
    const b = await startServer(modelService(other));
    try {
      for (let i = 0; i < 3; i++) expect((await raw(`${a.url}/v1/embeddings`, gif)).status).toBe(200);
      expect((await form(`${a.url}/v1/embeddings`, [gif, webp, exif6])).status).toBe(200);
      await raw(`${a.url}/v1/embeddings`, Buffer.from('junk'));
      await raw(`${a.url}/v1/embeddings`, Buffer.from('junk'), 'text/plain');
      await fetch(`${a.url}/nope`);
      const text = await (await fetch(`${a.url}/metrics`)).text();
      const req = (route: string, status: string) => metric(text, 'vitmsn_http_requests_total', { route, status });
      expect(req('/v1/embeddings', '200')).toBe(4);
      expect(req('/v1/embeddings', '400')).toBe(1);
      expect(req('/v1/embeddings', '415')).toBe(1);
      expect(req('unmatched', '404')).toBe(1);
      expect(metric(text, 'vitmsn_http_errors_total', { route: '/v1/embeddings', code: 'ERR_IMAGE_INVALID' })).toBe(1);
      expect(metric(text, 'vitmsn_http_errors_total', { code: 'ERR_UNSUPPORTED_MEDIA_TYPE' })).toBe(1);
      expect(metric(text, 'vitmsn_http_errors_total', { code: 'ERR_NOT_FOUND' })).toBe(1);
      expect(metric(text, 'vitmsn_images_total')).toBe(6);
      expect(metric(text, 'vitmsn_batch_size_count')).toBe(4); // the junk image failed: not a batch
      expect(metric(text, 'vitmsn_batch_size_sum')).toBe(6);
      expect(metric(text, 'vitmsn_http_request_duration_seconds_count', { route: '/v1/embeddings' })).toBe(6);
      expect(metric(text, 'vitmsn_queue_images')).toBe(0);
      expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds /m);
      expect(text).toMatch(/^process_resident_memory_bytes /m);
      // a second scrape adds nothing new
      const again = await (await fetch(`${a.url}/metrics`)).text();
      expect(metric(again, 'vitmsn_images_total')).toBe(6);
      expect(metric(again, 'vitmsn_batch_size_count')).toBe(4);
      // server b saw none of it
      expect((await raw(`${b.url}/v1/embeddings`, gif)).status).toBe(200);
      const other = await (await fetch(`${b.url}/metrics`)).text();
      expect(metric(other, 'vitmsn_http_requests_total', { route: '/v1/embeddings', status: '200' })).toBe(1);
      expect(metric(other, 'vitmsn_http_errors_total')).toBe(0);
      expect(metric(other, 'vitmsn_images_total')).toBe(1);
      expect(
        metric(await (await fetch(`${a.url}/metrics`)).text(), 'vitmsn_http_requests_total', {
          route: '/v1/embeddings',
          status: '200',
        }),
      ).toBe(4);
    } finally {
      await b.close();
      await a.close();
      await other.dispose();
    }
  });

  it("requests waiting together are coalesced into one model call; results are each request's own", async () => {
    const g = await gatedModel(s8Dir, { maxBatch: 8, maxDelayMs: 0 });
    const srv = await startServer(modelService(g.model));
    try {
      const u = `${srv.url}/v1/embeddings`;
      g.shut();
      const first = raw(u, gif);
      await until(() => g.calls.length === 1);
      const imgs = [chelsea, camera, exif6, webp];
      const rest = imgs.map((b) => raw(u, b));
      const bad = raw(u, Buffer.from('junk')); // fails alone; the others still answer
      await until(() => srv.app.vitmsn.service!.stats().queuedCalls === 5);
      g.open();
      expect((await first).status).toBe(200);
      for (let i = 0; i < imgs.length; i++) {
        const want = (await s8.encode(imgs[i])).data;
        const got = await embeddings(await rest[i]);
        let num = 0;
        let den = 0;
        for (let j = 0; j < want.length; j++) {
          num += (got[j] - want[j]) ** 2;
          den += want[j] ** 2;
        }
        expect(Math.sqrt(num / den)).toBeLessThan(1e-5); // batch of 5 vs 1: same math, maybe other summation order
      }
      expect((await bad).status).toBe(400);
      expect(g.calls[1].batch).toBe(4); // one native batch with the four good waiting images (junk failed decoding)
    } finally {
      g.open();
      await srv.close();
    }
  });

  it("a model with the library's batching (stats()) gets signal and timeoutMs passed through", async () => {
    const seen: Array<Record<string, unknown>> = [];
    const fake = {
      config: s8.config,
      numLabels: 0,
      stats: () => ({
        queuedImages: 0,
        queuedCalls: 0,
        maxQueue: 1024,
        batches: 7,
        images: 9,
        batchSizes: { 1: 5, 2: 2 },
        imagesPerSecond: 3,
        latencyMs: { p50: 1, p90: 2, p99: 3 },
      }),
      queue: () => ({ queuedImages: 0, queuedCalls: 0, maxQueue: 1024 }),
      encode: async (images: Buffer[], o: Record<string, unknown>) => {
        seen.push(o);
        return s8.encode(images, {
          pooling: o.pooling as 'cls',
          normalize: o.normalize as boolean,
          maxPixels: o.maxPixels as number,
        });
      },
      classify: async () => [],
      dispose: async () => undefined,
    } as unknown as Model;
    const svc = modelService(fake);
    const srv = await startServer(svc, { timeoutMs: 5000 });
    try {
      expect((await raw(`${srv.url}/v1/embeddings?pooling=mean`, gif)).status).toBe(200);
      expect(seen[0].signal).toBeInstanceOf(AbortSignal);
      expect(seen[0]).toMatchObject({ timeoutMs: 5000, pooling: 'mean', maxPixels: 40_000_000 });
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      expect(metric(text, 'vitmsn_batches_total')).toBe(7);
      expect(metric(text, 'vitmsn_batch_size_count')).toBe(7);
      expect(metric(text, 'vitmsn_batch_size_sum')).toBe(9);
      expect(metric(text, 'vitmsn_images_per_second')).toBe(3);
      expect(metric(text, 'vitmsn_model_latency_seconds', { quantile: '0.99' })).toBeCloseTo(0.003, 9);
    } finally {
      await srv.close();
    }
  });
});

describe('vitmsn serve (CLI): SIGTERM drains', () => {
  it('requests in progress complete with 200, the process exits 0, new connections are refused', async () => {
    const dir = modelFolder(tmpRoot, 'tiny-s8', 32, 'cli');
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--model', dir, '--port', '0', '--device', 'cpu', '--max-images', '256'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await until(() => /ready in/.test(stderr), 20_000, `the server to be ready: ${stderr}`);
      const url = /listening on (http:\/\/\S+)/.exec(stderr)![1];
      // enough work to still be running when the signal arrives: 4 requests × 128 images
      const many = Array.from({ length: 128 }, (_, i) => [chelsea, camera][i % 2]);
      const started = Date.now();
      const inFlight = Array.from({ length: 4 }, () =>
        form(`${url}/v1/embeddings`, many).then(async (r) => ({
          status: r.status,
          n: ((await r.json()) as { data: unknown[] }).data?.length,
          at: Date.now(),
        })),
      );
      await until(
        async () => {
          const t = await (await fetch(`${url}/metrics`)).text();
          return metric(t, 'vitmsn_queue_calls') >= 1;
        },
        20_000,
        'requests queued',
      );
      const signalled = Date.now();
      child.kill('SIGTERM');
      const results = await Promise.all(inFlight);
      for (const r of results) expect(r).toMatchObject({ status: 200, n: 128 });
      expect(results.some((r) => r.at > signalled)).toBe(true); // some were still running at SIGTERM
      const code = await exited;
      if (code !== 0) console.log(stderr);
      expect(code).toBe(0);
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
      expect(stderr).toMatch(/SIGTERM: draining/);
      expect(started).toBeLessThanOrEqual(signalled);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('bad usage exits 2; a model that cannot be loaded exits 1', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        c.stderr.on('data', (d) => (stderr += d));
        c.on('exit', (code) => resolve({ code, stderr }));
      });
    expect((await run(['serve'])).code).toBe(2);
    expect((await run(['serve', '--model', tmpRoot, '--port', 'x'])).code).toBe(2);
    const missing = await run(['serve', '--model', path.join(tmpRoot, 'nope'), '--port', '0', '--device', 'cpu']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ERR_/);
    expect((await run(['serve', '--model', tmpRoot, '--port', '0', '--decode', 'nvjpeg'])).code).toBe(2);
    // GPU decoding needs a CUDA model: refused once the model is loaded, before serving anything.
    const dir = modelFolder(tmpRoot, 'tiny-s8', 32, 'decode-gpu');
    const cpu = await run(['serve', '--model', dir, '--port', '0', '--device', 'cpu', '--decode', 'gpu']);
    expect(cpu.code).toBe(1);
    expect(cpu.stderr).toMatch(/ERR_INVALID_ARGUMENT.*CUDA/);
  });
});
