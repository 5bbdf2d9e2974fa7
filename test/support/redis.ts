// A real redis-server for the queue tests, on a free port of 127.0.0.1, its files in a temp dir.
// Where the binary is missing the tests skip with redisSkipReason (CI installs it: .ci/run).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

function findBinary(): string | undefined {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'redis-server' : undefined;
}

export const REDIS_SERVER = findBinary();
export const redisSkipReason = REDIS_SERVER
  ? undefined
  : 'redis-server is not installed (apt-get install redis-server): skipping the queue tests';

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Sends PING; resolves true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      c.destroy();
      resolve(ok);
    };
    c.setTimeout(1000, () => done(false));
    c.once('error', () => done(false));
    c.once('connect', () => c.write('PING\r\n'));
    c.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** SIGKILLs the server (no clean shutdown: what is on disk is what appendfsync wrote). */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder (with AOF, the data comes back). */
  start(): Promise<void>;
  /** Kills it and removes its folder. */
  stop(): Promise<void>;
}

/**
 * Starts redis-server. `aof`: append-only file with appendfsync always, so every acknowledged
 * write survives a kill and a restart; otherwise nothing is persisted.
 */
export async function startRedis(options: { aof?: boolean } = {}): Promise<RedisServer> {
  if (!REDIS_SERVER) throw new Error(redisSkipReason);
  const dir = mkdtempSync(path.join(tmpdir(), 'vitmsn-redis-'));
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    '--logfile',
    path.join(dir, 'redis.log'),
    ...(options.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
  ];
  let proc: ChildProcess | undefined;
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async start() {
      proc = spawn(REDIS_SERVER!, args, { stdio: 'ignore' });
      const deadline = Date.now() + 10_000;
      while (!(await ping(port))) {
        if (Date.now() > deadline || proc.exitCode !== null)
          throw new Error(`redis-server did not start on port ${port} (log: ${path.join(dir, 'redis.log')})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async kill() {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null) return;
      await new Promise((r) => {
        p.once('exit', r);
        p.kill('SIGKILL');
      });
    },
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
