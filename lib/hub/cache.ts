/**
 * The Hugging Face hub cache layout, as Python's huggingface_hub reads and writes it, so that
 * files fetched by either are reused by the other:
 *
 *   $HF_HUB_CACHE (default $HF_HOME/hub, HF_HOME default ~/.cache/huggingface)
 *     models--owner--name/
 *       blobs/<etag>                      the file contents, named by ETag (sha256 for LFS files)
 *       refs/<revision>                   the commit hash a branch/tag resolved to last time
 *       snapshots/<commit>/<file>         relative symlink to ../../blobs/<etag>
 *       .no_exist/<commit>/<file>         empty marker: the file does not exist at that commit
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { readBoundedText } from '../read-file';

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

// A ref file holds one commit hash; anything much larger is not one.
const MAX_REF_BYTES = 4096;

/** The cache root, from the environment as huggingface_hub resolves it. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE; // older spelling, still honoured by Python
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'huggingface');
  return path.join(home, 'hub');
}

export function repoFolder(cacheDir: string, repoId: string): string {
  return path.join(cacheDir, `models--${repoId.split('/').join('--')}`);
}

export class RepoCache {
  constructor(readonly root: string) {}

  /**
   * The commit a revision points at: itself when it is a hash, else refs/<revision> if known (a
   * ref that is missing, unreadable or not a regular file is not known).
   */
  async resolveRevision(revision: string): Promise<string | undefined> {
    if (COMMIT_HASH.test(revision)) return revision;
    try {
      const text = await readBoundedText(path.join(this.root, 'refs', revision), MAX_REF_BYTES, (_, message) => {
        throw new Error(`refs/${revision} ${message}`);
      });
      const commit = text.trim();
      return COMMIT_HASH.test(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  snapshotDir(commit: string): string {
    return path.join(this.root, 'snapshots', commit);
  }

  blobPath(etag: string): string {
    return path.join(this.root, 'blobs', etag);
  }

  /** 'present', 'absent' (a .no_exist marker says so) or 'unknown'. */
  lookup(commit: string, file: string): 'present' | 'absent' | 'unknown' {
    if (existsSync(path.join(this.snapshotDir(commit), file))) return 'present';
    if (existsSync(path.join(this.root, '.no_exist', commit, file))) return 'absent';
    return 'unknown';
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const ref = path.join(this.root, 'refs', revision);
    await mkdir(path.dirname(ref), { recursive: true });
    const tmp = `${ref}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, commit);
    await rename(tmp, ref);
  }

  async markAbsent(commit: string, file: string): Promise<void> {
    const p = path.join(this.root, '.no_exist', commit, file);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, '');
  }

  /** snapshots/<commit>/<file> → relative link to blobs/<etag> (replaced atomically if present). */
  async linkSnapshot(commit: string, file: string, etag: string): Promise<void> {
    const link = path.join(this.snapshotDir(commit), file);
    await mkdir(path.dirname(link), { recursive: true });
    const target = path.relative(path.dirname(link), this.blobPath(etag));
    const tmp = `${link}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await symlink(target, tmp);
    try {
      await rename(tmp, link);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }
}
