/**
 * loadModel's source resolution: an existing path is a local model folder; otherwise an
 * `owner/name` id is fetched from the Hugging Face hub into its cache (see cache.ts) and the
 * snapshot folder is returned. Weights: model.safetensors, else its sharded index, else
 * pytorch_model.bin, else its index — the order transformers uses.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { VitMsnError } from '../errors';
import { formatValue } from '../format-value';
import { MAX_INDEX_JSON_BYTES, readBoundedText, readOptionalText } from '../read-file';
import type { LoadOptions } from '../types';
import { hubCacheDir, repoFolder, RepoCache } from './cache';
import { downloadBlob, fileMetadata, type HubClient } from './download';
import { boolean, invalid, nonEmptyString, optionalFunction } from '../check';

/** loadModel options that concern where the model comes from (checked here, not by the engine). */
export const HUB_OPTION_KEYS = ['revision', 'onProgress', 'cacheDir', 'token', 'offline'] as const;

const REPO_ID = /^[A-Za-z0-9_.-]{1,96}\/[A-Za-z0-9_.-]{1,96}$/;

const WEIGHT_FILES = [
  'model.safetensors',
  'model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
];

function isRepoId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes('--') && !s.includes('..') && !/(^|\/)[.-]|[.-](\/|$)/.test(s);
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());
}

// A token is a few dozen characters.
const MAX_TOKEN_FILE_BYTES = 64 * 1024;

async function envToken(): Promise<string | undefined> {
  const t = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  if (t) return t.trim();
  // The file `huggingface-cli login` writes; an unusable one (unreadable, not a regular file, too
  // large) is ignored like a missing one, as before: the request then goes out without a token.
  const file =
    process.env.HF_TOKEN_PATH ??
    path.join(process.env.HF_HOME ?? path.join(homedir(), '.cache', 'huggingface'), 'token');
  try {
    const text = await readOptionalText(file, MAX_TOKEN_FILE_BYTES, (_, message) => {
      throw new Error(`${file} ${message}`);
    });
    return text?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A sharded checkpoint's index file, read with the bound every model-folder file gets. */
function readIndex(file: string, what: string): Promise<string> {
  return readBoundedText(file, MAX_INDEX_JSON_BYTES, (_, message, cause) => {
    throw new VitMsnError('ERR_CHECKPOINT_INVALID', `${what} ${message}`, { cause });
  });
}

function checkHubOptions(o: LoadOptions) {
  if (
    o.revision !== undefined &&
    (typeof o.revision !== 'string' ||
      o.revision === '' ||
      o.revision.split('/').some((p) => p === '' || p === '.' || p === '..'))
  ) {
    invalid(`revision must be a branch, tag or commit hash, got ${formatValue(o.revision)}`);
  }
  optionalFunction(o.onProgress, 'onProgress');
  for (const k of ['cacheDir', 'token'] as const) if (o[k] !== undefined) nonEmptyString(o[k], k);
  boolean(o.offline, 'offline');
}

/** A shard name from an index must stay inside the snapshot folder. */
function checkShardName(index: string, name: unknown): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new VitMsnError('ERR_CHECKPOINT_INVALID', `${index}: shard name ${formatValue(name)} is not a file name`);
  }
  return name;
}

/**
 * The local folder to load: `source` itself when it exists, else the hub snapshot of the id.
 */
export async function resolveModelDir(source: string, options: LoadOptions = {}): Promise<string> {
  if (options !== null && typeof options === 'object') checkHubOptions(options);
  if (existsSync(source)) return source;
  if (!isRepoId(source)) return source; // not an id: let the folder checks report the missing path
  const revision = options.revision ?? 'main';
  const cache = new RepoCache(repoFolder(options.cacheDir ?? hubCacheDir(), source));
  const offline = options.offline ?? truthy(process.env.HF_HUB_OFFLINE);
  if (offline) return await fromCache(source, revision, cache);
  try {
    return await download(source, revision, cache, options);
  } catch (e) {
    // Say why the hub was asked at all: a mistyped relative folder also looks like owner/name.
    if (e instanceof VitMsnError && e.code === 'ERR_HUB_NOT_FOUND') {
      throw new VitMsnError(
        e.code,
        `'${source}' is not a local folder, so it was looked up as a hub model id: ${e.message}`,
        { cause: e },
      );
    }
    throw e;
  }
}

async function fromCache(repoId: string, revision: string, cache: RepoCache): Promise<string> {
  const commit = await cache.resolveRevision(revision);
  const notCached = (what: string): never => {
    throw new VitMsnError(
      'ERR_OFFLINE',
      `'${repoId}' is not a local folder, and offline mode (HF_HUB_OFFLINE) is on, ` +
        `but ${what} in the Hugging Face cache at ${cache.root}; run once online, or pass a model folder`,
    );
  };
  if (!commit) return notCached(`revision '${revision}' is not`);
  if (cache.lookup(commit, 'config.json') !== 'present') return notCached('its config.json is not');
  for (const file of WEIGHT_FILES) {
    if (cache.lookup(commit, file) !== 'present') continue;
    if (file.endsWith('.index.json')) {
      const text = await readIndex(path.join(cache.snapshotDir(commit), file), `${file} in the cache`);
      let index: { weight_map?: Record<string, unknown> };
      try {
        index = JSON.parse(text);
      } catch (e) {
        throw new VitMsnError('ERR_CHECKPOINT_INVALID', `${file} in the cache is not valid JSON`, { cause: e });
      }
      const shards = new Set(Object.values(index.weight_map ?? {}).map((s) => checkShardName(file, s)));
      if ([...shards].some((s) => cache.lookup(commit, s) !== 'present')) continue;
    }
    return cache.snapshotDir(commit);
  }
  return notCached('its weights are not');
}

async function download(repoId: string, revision: string, cache: RepoCache, options: LoadOptions): Promise<string> {
  const client: HubClient = {
    endpoint: process.env.HF_ENDPOINT || 'https://huggingface.co',
    token: options.token ?? (await envToken()),
    fetch: globalThis.fetch,
  };
  let commit: string | undefined;
  // Fetches one file into the cache; false when it does not exist at this revision.
  const fetchFile = async (file: string): Promise<boolean> => {
    const meta = await fileMetadata(client, repoId, commit ?? revision, file);
    if (meta === null) {
      if (commit) await cache.markAbsent(commit, file);
      return false;
    }
    if (commit === undefined) {
      commit = meta.commit;
      await cache.writeRef(revision, commit);
    }
    if (!existsSync(path.join(cache.snapshotDir(commit), file))) {
      if (!existsSync(cache.blobPath(meta.etag)))
        await downloadBlob(client, meta, file, cache.blobPath(meta.etag), options.onProgress);
      await cache.linkSnapshot(commit, file, meta.etag);
    }
    return true;
  };

  if (!(await fetchFile('config.json'))) {
    throw new VitMsnError('ERR_CONFIG_NOT_FOUND', `${repoId}@${revision} has no config.json`);
  }
  await fetchFile('preprocessor_config.json'); // optional; used by image preprocessing when present
  for (const file of WEIGHT_FILES) {
    if (!(await fetchFile(file))) continue;
    if (file.endsWith('.index.json')) {
      const text = await readIndex(path.join(cache.snapshotDir(commit!), file), `${repoId}/${file}`);
      let map: unknown;
      try {
        map = (JSON.parse(text) as { weight_map?: unknown }).weight_map;
      } catch (e) {
        throw new VitMsnError('ERR_CHECKPOINT_INVALID', `${repoId}/${file} is not valid JSON`, { cause: e });
      }
      if (map === null || typeof map !== 'object')
        throw new VitMsnError('ERR_CHECKPOINT_INVALID', `${repoId}/${file} has no weight_map`);
      for (const shard of new Set(Object.values(map as Record<string, unknown>).map((s) => checkShardName(file, s)))) {
        if (!(await fetchFile(shard))) {
          throw new VitMsnError(
            'ERR_WEIGHTS_NOT_FOUND',
            `${repoId}/${file} names shard ${shard}, which the repository does not hold`,
          );
        }
      }
    }
    return cache.snapshotDir(commit!);
  }
  throw new VitMsnError('ERR_WEIGHTS_NOT_FOUND', `${repoId}@${revision} has none of ${WEIGHT_FILES.join(', ')}`);
}
