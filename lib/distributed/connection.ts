/**
 * Redis connection options for BullMQ (ioredis underneath) from a `redis://` URL.
 *
 * Commands never fail because Redis is away for a while (`maxRetriesPerRequest: null`, which
 * BullMQ requires of workers): ioredis reconnects with a short backoff and sends what was queued,
 * so a Redis restart is a pause, not an error. Only the first connection is bounded in time
 * ({@link waitReady}), so a wrong URL is an error, not a hang.
 */
import type { ConnectionOptions } from 'bullmq';
import { VitMsnError } from '../errors';
import { formatValue } from '../format-value';
import { invalid } from '../check';

/** Default BullMQ key prefix (BullMQ's own). */
export const DEFAULT_KEY_PREFIX = 'bull';

/** Checks a redis:// or rediss:// URL; returns it unchanged. */
export function checkRedisUrl(url: unknown): string {
  let u: URL | undefined;
  try {
    u = typeof url === 'string' ? new URL(url) : undefined;
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:')) {
    invalid(
      `redis must be a redis:// or rediss:// URL (redis://[user:password@]host[:port][/db]), got ${formatValue(url)}`,
    );
  }
  return url as string;
}

/** Queue names become Redis key parts: keep them to a plain alphabet (BullMQ refuses ':'). */
export function checkQueueName(name: unknown): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(name)) {
    invalid(`queue must be 1-100 letters, digits, '_', '.' or '-' (not first), got ${formatValue(name)}`);
  }
  return name;
}

/** Reconnect delay after the n-th failed attempt: 50 ms growing to 1 s, forever. */
export function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1000);
}

export function connectionOptions(url: string): ConnectionOptions {
  return {
    url: checkRedisUrl(url),
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    retryStrategy: reconnectDelay,
  };
}

/**
 * Resolves when `client` (a BullMQ Queue, Worker, …) is connected; ERR_REDIS_UNAVAILABLE after
 * `timeoutMs`. The client keeps trying in the background: the caller closes it on failure.
 */
export async function waitReady(
  client: { waitUntilReady(): Promise<unknown> },
  url: string,
  timeoutMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new VitMsnError('ERR_REDIS_UNAVAILABLE', `Redis at ${redacted(url)} did not answer within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([client.waitUntilReady(), timeout]);
  } catch (e) {
    if (e instanceof VitMsnError) throw e;
    throw new VitMsnError('ERR_REDIS_UNAVAILABLE', `Redis at ${redacted(url)}: ${(e as Error)?.message ?? e}`, {
      cause: e,
    });
  } finally {
    clearTimeout(timer);
  }
}

/** The URL without its password, for messages and logs. */
export function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
