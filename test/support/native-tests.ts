// Runs a native test executable built by CMake (build-cmake/) and checks the harness's last line,
// "N passed, 0 failed", with at least `minPassed` checks (a test that silently ran nothing fails).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';

const buildDir = path.join(__dirname, '..', '..', 'build-cmake');

export function nativeExe(name: string): string {
  for (const p of [path.join(buildDir, name), path.join(buildDir, 'Release', name)]) if (existsSync(p)) return p;
  throw new Error(`${name} not built: run \`npm run build:native\` first (looked in ${buildDir})`);
}

/** Resolves to the executable's stdout, for checks beyond the summary line. */
export async function runNativeTest(
  name: string,
  args: readonly string[] = [],
  env: Record<string, string> = {},
  minPassed = 1,
): Promise<string> {
  const { stdout } = await promisify(execFile)(nativeExe(name), [...args], {
    env: { ...process.env, ...env },
    maxBuffer: 16 << 20,
    timeout: 600_000,
  });
  const summary = stdout.trim().split('\n').pop()!;
  expect(summary, name).toMatch(/^\d+ passed, 0 failed$/);
  expect(Number(summary.split(' ')[0]), name).toBeGreaterThanOrEqual(minPassed);
  return stdout;
}
