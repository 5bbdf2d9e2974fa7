/**
 * A request's images and options, from the three body forms: one raw image (image/*,
 * application/octet-stream), multipart/form-data (each file part one image, in order; fields are
 * options), or JSON `{ "images": ["<base64>", …], …options }`. Options may also be in the query.
 * Bodies are parsed by fastify and @fastify/multipart; this checks what they produced.
 */
import type { FastifyRequest } from 'fastify';
import { POOLINGS, type Pooling } from '../encode';
import { ServeError } from './serve-error';

export interface InputLimits {
  maxBodyBytes: number;
  maxImages: number;
}

export type Endpoint = 'embeddings' | 'classify';

export interface RequestOptions {
  pooling?: Pooling;
  normalize?: boolean;
  topK?: number;
}

/** Option names each endpoint takes, in the query, JSON body or multipart fields. */
const OPTION_NAMES: Record<Endpoint, readonly string[]> = {
  embeddings: ['pooling', 'normalize'],
  classify: ['top_k'],
};

function bad(message: string): never {
  throw new ServeError('ERR_INVALID_ARGUMENT', message);
}

const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;
const DATA_URI = /^data:[^,]*;base64,/i;
const BASE64 = /^(?:[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9_-]*={0,2})$/;

function fromBase64(s: string, i: number): Buffer {
  if (URL_LIKE.test(s)) {
    bad(
      `images[${i}] looks like a URL: fetching images from URLs is not supported; send the image bytes (base64 in JSON, a raw image body, or multipart/form-data)`,
    );
  }
  const b64 = s.replace(DATA_URI, '').replace(/\s+/g, '');
  if (!BASE64.test(b64) || b64.length % 4 === 1)
    throw new ServeError('ERR_IMAGE_INVALID', `images[${i}] is not base64`);
  return Buffer.from(b64, b64.includes('-') || b64.includes('_') ? 'base64url' : 'base64');
}

function tooMany(n: number, limits: InputLimits): never {
  throw new ServeError('ERR_TOO_MANY_IMAGES', `${n} images in one request; at most ${limits.maxImages} (--max-images)`);
}

/** Each file part one image, in order; other fields are options. */
async function readMultipart(
  request: FastifyRequest,
  endpoint: Endpoint,
  limits: InputLimits,
): Promise<{ images: Buffer[]; fields: Record<string, unknown> }> {
  const images: Buffer[] = [];
  const fields: Record<string, unknown> = {};
  let total = 0;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (images.length >= limits.maxImages) tooMany(images.length + 1, limits);
        const buf = await part.toBuffer();
        total += buf.length;
        if (total > limits.maxBodyBytes)
          throw new ServeError(
            'ERR_BODY_TOO_LARGE',
            `the images are over ${limits.maxBodyBytes} bytes in all (--max-body-bytes)`,
          );
        images.push(buf);
      } else {
        if (!OPTION_NAMES[endpoint].includes(part.fieldname))
          bad(
            `unknown form field "${part.fieldname}" (known: ${OPTION_NAMES[endpoint].join(', ')}; images are file parts)`,
          );
        fields[part.fieldname] = part.value;
      }
    }
  } catch (e) {
    const code = (e as { code?: unknown })?.code;
    if (e instanceof ServeError || (typeof code === 'string' && code.startsWith('FST_'))) throw e;
    bad(`malformed multipart/form-data body: ${(e as Error)?.message ?? e}`); // busboy's parse errors carry no code
  }
  if (images.length === 0) bad('the form has no file parts: send each image as a file part');
  return { images, fields };
}

/** The images of a request and its option fields (JSON values or multipart strings). */
export async function readImages(
  request: FastifyRequest,
  endpoint: Endpoint,
  limits: InputLimits,
): Promise<{ images: Buffer[]; fields: Record<string, unknown> }> {
  if (request.isMultipart()) return readMultipart(request, endpoint, limits);
  const body = request.body;
  if (Buffer.isBuffer(body)) return { images: [body], fields: {} };
  if (body === undefined || body === null || body === '') {
    bad(
      'no image: send one as the body (Content-Type image/* or application/octet-stream), several as multipart/form-data, or JSON {"images": ["<base64>", ...]}',
    );
  }
  if (typeof body !== 'object' || Array.isArray(body))
    bad('the JSON body must be an object {"images": ["<base64>", ...], ...options}');
  const { images, ...fields } = body as Record<string, unknown>;
  if (!Array.isArray(images) || images.length === 0) bad('"images" must be a non-empty array of base64 strings');
  if (images.length > limits.maxImages) tooMany(images.length, limits);
  for (const k of Object.keys(fields)) {
    if (!OPTION_NAMES[endpoint].includes(k))
      bad(`unknown field "${k}" (known: images, ${OPTION_NAMES[endpoint].join(', ')})`);
  }
  return {
    images: images.map((s, i) => {
      if (typeof s !== 'string') bad(`images[${i}] must be a base64 string`);
      return fromBase64(s, i);
    }),
    fields,
  };
}

function bool(v: unknown, name: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1' || v === '') return true;
  if (v === 'false' || v === '0') return false;
  bad(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

/** Options from the query, then the body's fields (which win). */
export function readOptions(endpoint: Endpoint, query: unknown, fields: Record<string, unknown>): RequestOptions {
  const q = (query && typeof query === 'object' ? query : {}) as Record<string, unknown>;
  for (const k of Object.keys(q)) {
    if (!OPTION_NAMES[endpoint].includes(k))
      bad(`unknown query parameter "${k}" (known: ${OPTION_NAMES[endpoint].join(', ')})`);
  }
  const all = { ...q, ...fields };
  const out: RequestOptions = {};
  for (const [k, v0] of Object.entries(all)) {
    const v = Array.isArray(v0) ? bad(`${k} given more than once`) : v0;
    if (k === 'pooling') {
      if (!POOLINGS.includes(v as Pooling))
        bad(`pooling must be one of ${POOLINGS.join(', ')}, got ${JSON.stringify(v)}`);
      out.pooling = v as Pooling;
    } else if (k === 'normalize') out.normalize = bool(v, 'normalize');
    else if (k === 'top_k') {
      const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)
        bad(`top_k must be a positive integer, got ${JSON.stringify(v)}`);
      out.topK = n;
    }
  }
  return out;
}

/** Whether the Accept header prefers little-endian float32 (application/octet-stream) to JSON. */
export function wantsOctetStream(accept: string | undefined): boolean {
  if (!accept) return false;
  let json = 0;
  let octet = 0;
  for (const range of accept.split(',')) {
    const [type, ...params] = range.trim().toLowerCase().split(';');
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qp ? Number(qp.slice(2)) || 0 : 1;
    const t = type.trim();
    if (t === 'application/octet-stream') octet = Math.max(octet, q);
    else if (t === 'application/json') json = Math.max(json, q);
    else if ((t === '*/*' || t === 'application/*') && json === 0) json = Math.max(json, q * 0.999); // a wildcard ranks below an explicit type
  }
  return octet > 0 && octet > json;
}
