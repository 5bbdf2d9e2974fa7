// A local stand-in for the Hugging Face hub's resolve endpoints, on 127.0.0.1: enough of the real
// protocol for the download code (and Python's huggingface_hub) to work against it.
//   HEAD/GET /{owner}/{name}/resolve/{revision}/{file}
//     small files: 200 with ETag (git-style sha1 of the content) and X-Repo-Commit;
//     .bin/.safetensors (LFS): 302 to an absolute /cdn/{sha256} URL with X-Linked-Etag,
//     X-Linked-Size and X-Repo-Commit; 404 with X-Error-Code Repository/Revision/EntryNotFound.
//   GET /cdn/{sha256}: the bytes, served from a second port (another origin, like the real CDN);
//   `dropNext` cuts the connection part-way through once.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  /** revision name (branch/tag) or commit hash → commit hash */
  refs: Record<string, string>;
  /** commit hash → file path → contents */
  commits: Record<string, Record<string, Buffer>>;
  /** when set, requests must carry `Authorization: Bearer <token>` */
  token?: string;
}

export interface FakeHub {
  url: string;
  cdnUrl: string;
  requests: Array<{ method: string; path: string; auth?: string }>;
  /** the next CDN GET of a file this large or larger sends only this many bytes, then drops */
  dropNext?: { minSize: number; after: number };
  /** the next CDN GET sends the right length with one byte changed */
  corruptNext?: boolean;
  close(): Promise<void>;
}

const isLfs = (file: string) => /\.(bin|safetensors)$/.test(file);

export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const blobs = new Map<string, Buffer>();
  const hub: FakeHub = { url: '', cdnUrl: '', requests: [], close: async () => undefined };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hub.requests.push({ method: req.method ?? '', path: url.pathname, auth: req.headers.authorization });
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const data = blobs.get(cdn[1]);
      if (!data) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': data.length, 'content-type': 'application/octet-stream' });
      if (req.method === 'HEAD') return void res.end();
      const drop = hub.dropNext;
      if (drop && data.length >= drop.minSize) {
        hub.dropNext = undefined;
        res.write(data.subarray(0, drop.after), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      if (hub.corruptNext) {
        hub.corruptNext = false;
        const bad = Buffer.from(data);
        bad[bad.length >> 1] ^= 0xff;
        return void res.end(bad);
      }
      return void res.end(data);
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const notFound = (code: string) => void res.writeHead(404, { 'x-error-code': code }).end();
    if (!m) return notFound('RepositoryNotFound');
    const [, repoId, rev, file] = m.map(decodeURIComponent);
    const repo = repos[repoId];
    if (!repo) return notFound('RepositoryNotFound');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end();
    }
    const commit = repo.refs[rev] ?? (repo.commits[rev] ? rev : undefined);
    if (!commit) return notFound('RevisionNotFound');
    const data = repo.commits[commit][file];
    if (!data) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': commit }).end();
    if (isLfs(file)) {
      const sha = createHash('sha256').update(data).digest('hex');
      blobs.set(sha, data);
      return void res
        .writeHead(302, {
          location: `${hub.cdnUrl}/cdn/${sha}`,
          'x-linked-etag': `"${sha}"`,
          'x-linked-size': data.length,
          'x-repo-commit': commit,
          'content-length': 0,
        })
        .end();
    }
    const etag = createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
    res.writeHead(200, { etag: `"${etag}"`, 'x-repo-commit': commit, 'content-length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  };

  const listen = async (): Promise<[Server, string]> => {
    const server: Server = createServer(handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
  };
  const [api, apiUrl] = await listen();
  const [cdnServer, cdnUrl] = await listen();
  hub.url = apiUrl;
  hub.cdnUrl = cdnUrl;
  hub.close = async () => {
    for (const server of [api, cdnServer]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  };
  return hub;
}
