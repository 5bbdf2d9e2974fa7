// Runs a snippet in a fresh Node process against the built package (dist/), for the checks an
// in-process test cannot make safely: that a call settles and the process can still exit, and how
// much memory a call takes. The child is killed after `timeoutMs`, so a test never hangs.
import { spawn } from 'node:child_process';
import path from 'node:path';

export const DIST = path.join(__dirname, '..', '..', 'dist', 'index.js');

export interface ChildResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the child was killed. */
  status: number | null;
  timedOut: boolean;
  ms: number;
}

/** `script` is CommonJS run with `vitmsn` already required from dist/. */
export function runNode(script: string, timeoutMs: number): Promise<ChildResult> {
  const code = `const vitmsn = require(${JSON.stringify(DIST)});\n${script}`;
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, status, timedOut, ms: Date.now() - start });
    });
  });
}
