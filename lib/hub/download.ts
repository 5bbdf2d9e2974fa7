/**
 * HTTP side of hub downloads, following huggingface_hub's protocol: a HEAD on
 * {endpoint}/{repo}/resolve/{revision}/{file} gives the commit (X-Repo-Commit), the blob's ETag
 * (X-Linked-Etag for LFS files, whose 302 points at the CDN) and size; the body is then streamed
 * into a uniquely named temp file beside the blob and renamed into place only once complete (and,
 * for LFS files, once its sha256 matches the ETag). An interrupted download therefore never leaves
 * a file that looks complete.
 *
 * Node's built-in fetch (undici) does the HTTP. @huggingface/hub's downloadFileToCacheDir was not
 * used: it reports no progress, does not write refs/<revision> (so Python's offline mode cannot
 * reuse what it fetched), queries the paths-info API instead of the resolve endpoint, and logs
 * through console.debug.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { VitMsnError } from '../errors';
import type { DownloadProgress } from '../types';

export interface HubClient {
  endpoint: string;
  token?: string;
  fetch: typeof fetch;
}

export interface FileMetadata {
  commit: string;
  etag: string;
  size?: number;
  /** Where the bytes are (the CDN URL of an LFS file, or the resolve URL itself). */
  location: string;
}

export function resolveUrl(client: HubClient, repoId: string, revision: string, file: string): string {
  const base = client.endpoint.replace(/\/+$/, '');
  return `${base}/${repoId}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

function authHeaders(client: HubClient, url: string): Record<string, string> {
  // The token goes to the hub only, never to the CDN a file redirects to.
  if (!client.token || new URL(url).origin !== new URL(client.endpoint).origin) return {};
  return { authorization: `Bearer ${client.token}` };
}

function normaliseEtag(v: string | null): string | undefined {
  if (!v) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** null when the file does not exist at that revision (404 on an existing repo and revision). */
export async function fileMetadata(
  client: HubClient,
  repoId: string,
  revision: string,
  file: string,
): Promise<FileMetadata | null> {
  let url = resolveUrl(client, repoId, revision, file);
  for (let hops = 0; hops < 10; hops++) {
    let res: Response;
    try {
      res = await client.fetch(url, {
        method: 'HEAD',
        redirect: 'manual',
        headers: { 'accept-encoding': 'identity', ...authHeaders(client, url) },
      });
    } catch (e) {
      throw new VitMsnError(
        'ERR_DOWNLOAD_FAILED',
        `cannot reach ${client.endpoint} for ${repoId}/${file}: ${(e as Error).message}` +
          ' (set HF_HUB_OFFLINE=1 to use only the local cache)',
        { cause: e },
      );
    }
    const location = res.headers.get('location');
    // Relative redirects are the hub's own (a renamed repo): follow them. An absolute one is the
    // CDN: its headers already describe the file.
    if (res.status >= 300 && res.status < 400 && location && location.startsWith('/')) {
      url = new URL(location, url).toString();
      continue;
    }
    if (res.status === 404) {
      const code = res.headers.get('x-error-code');
      if (code === 'EntryNotFound') return null;
      const what = code === 'RevisionNotFound' ? `revision '${revision}' of ${repoId}` : `model '${repoId}'`;
      throw new VitMsnError(
        'ERR_HUB_NOT_FOUND',
        `${what} was not found on ${client.endpoint}` +
          (code ? ` (${code})` : '') +
          '; check the id, or set HF_TOKEN for a private or gated model',
      );
    }
    if (res.status === 401 || res.status === 403) {
      throw new VitMsnError(
        'ERR_HUB_NOT_FOUND',
        `${repoId}/${file}: access denied (HTTP ${res.status}); ` +
          (client.token
            ? 'the token in HF_TOKEN has no access to this model'
            : 'set HF_TOKEN for a private or gated model'),
      );
    }
    if (!(res.status >= 200 && res.status < 400)) {
      throw new VitMsnError('ERR_DOWNLOAD_FAILED', `${repoId}/${file}: HTTP ${res.status} from ${url}`);
    }
    const commit = res.headers.get('x-repo-commit');
    const etag = normaliseEtag(res.headers.get('x-linked-etag')) ?? normaliseEtag(res.headers.get('etag'));
    if (!commit || !/^[0-9a-f]{40}$/.test(commit) || !etag || !/^[\w.-]+$/.test(etag)) {
      throw new VitMsnError(
        'ERR_DOWNLOAD_FAILED',
        `${repoId}/${file}: the server sent no usable X-Repo-Commit/ETag headers (is HF_ENDPOINT a Hugging Face hub?)`,
      );
    }
    const sizeHeader = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
    const size = sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : undefined;
    return { commit, etag, size, location: location ? new URL(location, url).toString() : url };
  }
  throw new VitMsnError('ERR_DOWNLOAD_FAILED', `${repoId}/${file}: too many redirects`);
}

/**
 * Streams `meta.location` to `dest` atomically. Progress is reported as bytes arrive.
 */
export async function downloadBlob(
  client: HubClient,
  meta: FileMetadata,
  file: string,
  dest: string,
  onProgress?: (p: DownloadProgress) => void,
): Promise<void> {
  await mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.${process.pid}.${Math.random().toString(36).slice(2)}.incomplete`;
  const fail = (why: string, cause?: unknown): never => {
    throw new VitMsnError('ERR_DOWNLOAD_FAILED', `downloading ${file}: ${why}`, { cause });
  };
  try {
    let res: Response;
    try {
      res = await client.fetch(meta.location, {
        headers: { 'accept-encoding': 'identity', ...authHeaders(client, meta.location) },
      });
    } catch (e) {
      return fail((e as Error).message, e);
    }
    if (!res.ok || !res.body) fail(`HTTP ${res.status} from ${meta.location}`);
    const lengthHeader = res.headers.get('content-length');
    const total = meta.size ?? (lengthHeader && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined);
    // LFS blobs are named by their sha256: check it, so a corrupted transfer is never cached.
    const sha = /^[0-9a-f]{64}$/.test(meta.etag) ? createHash('sha256') : undefined;
    const out = createWriteStream(tmp, { flags: 'wx' });
    const closed = new Promise<void>((resolve, reject) => {
      out.on('close', resolve);
      out.on('error', reject);
    });
    let loaded = 0;
    onProgress?.({ file, loaded, total });
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        loaded += chunk.byteLength;
        sha?.update(chunk);
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        onProgress?.({ file, loaded, total });
      }
    } catch (e) {
      out.destroy();
      await closed.catch(() => undefined);
      return fail(
        `the connection broke after ${loaded} bytes${total !== undefined ? ` of ${total}` : ''} (${(e as Error).message})`,
        e,
      );
    }
    out.end();
    await closed;
    if (total !== undefined && loaded !== total) fail(`received ${loaded} bytes, expected ${total}`);
    if (sha && sha.digest('hex') !== meta.etag) fail(`content does not match its sha256 ${meta.etag}`);
    await rename(tmp, dest);
  } finally {
    await unlink(tmp).catch(() => undefined); // gone already after a successful rename
  }
}
