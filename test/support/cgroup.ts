// A memory-limited cgroup for one child process: a real container-style limit, so memory tests see
// what a process in a 512 MB container sees (the kernel kills it if it allocates past the limit).
// Made under the test process's own memory cgroup (v1 "memory" controller or v2 unified), which
// needs root; where that is not possible, `reason` says why and the caller skips.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export type MemoryCgroup = { dir: string; v2: boolean; remove(): void } | { reason: string };

function ownGroupDir(): { dir: string; v2: boolean } | undefined {
  const groups = readFileSync('/proc/self/cgroup', 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(':'));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [head, tail] = l.split(' - ');
      const f = head.split(' '),
        t = tail.split(' ');
      return { root: f[3], point: f[4], type: t[0], options: t[2] ?? '' };
    });
  const v1 = groups.find(([, c]) => c.split(',').includes('memory'));
  const m1 = mounts.find((m) => m.type === 'cgroup' && m.options.split(',').includes('memory'));
  if (v1 && m1 && v1[2].startsWith(m1.root))
    return { dir: path.join(m1.point, v1[2].slice(m1.root === '/' ? 0 : m1.root.length)), v2: false };
  const v2 = groups.find(([id, c]) => id === '0' && c === '');
  const m2 = mounts.find((m) => m.type === 'cgroup2');
  if (v2 && m2 && v2[2].startsWith(m2.root))
    return { dir: path.join(m2.point, v2[2].slice(m2.root === '/' ? 0 : m2.root.length)), v2: true };
  return undefined;
}

/** A new cgroup limited to `bytes` (no swap beyond it); move a process in by writing its pid to cgroup.procs. */
export function memoryCgroup(bytes: number): MemoryCgroup {
  if (process.platform !== 'linux') return { reason: 'not Linux' };
  let own: ReturnType<typeof ownGroupDir>;
  try {
    own = ownGroupDir();
  } catch (e) {
    return { reason: `cannot read this process's cgroups: ${(e as Error).message}` };
  }
  if (!own) return { reason: 'no memory cgroup controller mounted' };
  const dir = path.join(own.dir, `vitmsn-test-${process.pid}-${Date.now()}`);
  try {
    mkdirSync(dir);
    if (own.v2) {
      writeFileSync(path.join(dir, 'memory.max'), String(bytes));
      try {
        writeFileSync(path.join(dir, 'memory.swap.max'), '0');
      } catch {
        /* no swap accounting */
      }
    } else {
      writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(bytes));
      try {
        writeFileSync(path.join(dir, 'memory.memsw.limit_in_bytes'), String(bytes));
      } catch {
        /* no swap accounting */
      }
    }
  } catch (e) {
    try {
      rmdirSync(dir);
    } catch {
      /* never made */
    }
    return { reason: `cannot make a memory cgroup under ${own.dir} (needs root): ${(e as Error).message}` };
  }
  return {
    dir,
    v2: own.v2,
    remove: () => {
      try {
        rmdirSync(dir);
      } catch {
        /* still has a process: the OS removes nothing; leave it */
      }
    },
  };
}
