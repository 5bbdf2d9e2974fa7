// Importing vitmsn widens libuv's thread pool (where sharp decodes) to the machine's cores unless
// the user set UV_THREADPOOL_SIZE. Each case runs in a child Node process (the pool's size is fixed
// when it starts): the environment it ends up with, and on Linux the threads it has once the pool
// has run a job (the pool makes all its threads at start), compared with a child given that size
// explicitly. On a machine with ≤ 4 cores the size asked for is libuv's default of 4.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const DIST = path.join(__dirname, '..', 'dist', 'index.js');

function child(env: Record<string, string | undefined>, importVitmsn = true) {
  const script = `
    ${importVitmsn ? `require(${JSON.stringify(DIST)});` : ''}
    const fs = require('node:fs');
    fs.readFile(${JSON.stringify(DIST)}, () => {  // starts libuv's pool
      const threads = process.platform === 'linux' ? fs.readdirSync('/proc/self/task').length : -1;
      console.log(JSON.stringify({ size: process.env.UV_THREADPOOL_SIZE ?? null, threads }));
    });`;
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) e[k] = v;
  const out = execFileSync(process.execPath, ['-e', script], { env: e }).toString();
  return JSON.parse(out.trim().split('\n').pop()!) as { size: string | null; threads: number };
}

describe("libuv's thread pool", () => {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const wanted = Math.min(1024, Math.max(4, cores));

  it('is one thread per core (at least 4) after importing vitmsn, when the user has not set it', () => {
    const got = child({ UV_THREADPOOL_SIZE: undefined });
    expect(got.size).toBe(String(wanted));
    if (got.threads >= 0) {
      const explicit = child({ UV_THREADPOOL_SIZE: String(wanted) }, false);
      const more = child({ UV_THREADPOOL_SIZE: String(wanted + 3) }, false);
      expect(more.threads - explicit.threads).toBe(3); // the count measures the pool
      expect(got.threads).toBe(explicit.threads);
    }
  }, 60_000);

  it("keeps the user's own UV_THREADPOOL_SIZE", () => {
    const got = child({ UV_THREADPOOL_SIZE: '3' });
    expect(got.size).toBe('3');
    if (got.threads >= 0) expect(got.threads).toBe(child({ UV_THREADPOOL_SIZE: '3' }, false).threads);
  }, 60_000);
});
