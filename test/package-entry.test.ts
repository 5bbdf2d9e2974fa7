// The package's two entry points (CommonJS and ES module) and its shipped types resolve through
// package.json "exports", and share one module instance.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..');
const run = promisify(execFile);

describe('package entry points', () => {
  it('require("vitmsn") and import("vitmsn") expose the same API object', async () => {
    // Resolved by name from the package root, exactly as a dependent project would.
    const script = `
      const cjs = require('vitmsn');
      import('vitmsn').then((esm) => {
        const names = ['loadModel', 'backends', 'Model', 'VitMsnError', 'isVitMsnError'];
        const ok = names.every((n) => typeof cjs[n] === 'function' && esm[n] === cjs[n]) && esm.default === cjs;
        console.log(JSON.stringify({ ok, cpu: cjs.backends().find((b) => b.name === 'cpu').available }));
      });`;
    const { stdout } = await run(process.execPath, ['-e', script], {
      cwd: root,
      env: { ...process.env, NODE_PATH: '' },
    });
    expect(JSON.parse(stdout)).toEqual({ ok: true, cpu: true });
  });

  it("require('vitmsn') loads neither BullMQ nor ioredis; 'vitmsn/distributed' does, and exposes the queue API", async () => {
    const script = `
      require('vitmsn');
      const loaded = () => Object.keys(require.cache).filter((f) => /node_modules[\\\\/](bullmq|ioredis)[\\\\/]/.test(f)).length;
      const before = loaded();
      const d = require('vitmsn/distributed');
      console.log(JSON.stringify({ before, after: loaded() > 0, api: ['createWorker', 'enqueue', 'readResults'].every((n) => typeof d[n] === 'function') }));`;
    const { stdout } = await run(process.execPath, ['-e', script], {
      cwd: root,
      env: { ...process.env, NODE_PATH: '' },
    });
    expect(JSON.parse(stdout)).toEqual({ before: 0, after: true, api: true });
  });

  it('ships TypeScript declarations for both entry points', () => {
    const pkg = require(path.join(root, 'package.json'));
    for (const cond of ['import', 'require']) {
      const types = pkg.exports['.'][cond].types as string;
      expect(existsSync(path.join(root, types)), types).toBe(true);
    }
  });
});
