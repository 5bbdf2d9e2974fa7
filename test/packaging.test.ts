// The published package: `npm pack` ships the prebuilt addon plus what a source build needs, and
// nothing else; installed into an empty project with no compiler on PATH and no network, both
// require('vitmsn') and import('vitmsn') load the prebuild and run a local model folder.
//
// The consumer install must not depend on what npm happens to have cached: `npm ci` installs from
// the lockfile's tarball URLs and never caches registry metadata, so an `--offline` install that
// has to resolve `node-addon-api@^8.5.0` from a range fails on a machine whose cache is empty.
// Instead, vitmsn's runtime dependencies (and theirs) are packed from this repository's own
// node_modules and pinned with the consumer's `overrides`, so npm resolves every edge from a local
// tarball. Checked with the whole suite under `npm_config_cache=<an empty folder>`.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, loadModel } from '../lib/index';
import { goldenDir } from './support/goldens';

const ROOT = path.join(__dirname, '..');
// npm's own entry point (set by `npm test`), else where a standard Node install keeps it.
const NPM_CLI = process.env.npm_execpath?.endsWith('npm-cli.js')
  ? process.env.npm_execpath
  : path.join(path.dirname(realpathSync(process.execPath)), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'vitmsn-pack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// PATH for the consumer: node and a shell (npm runs scripts through `sh`), no compiler, no python.
const bin = path.join(tmp, 'bin');
// Network: `--offline`, and a dead proxy so that any request npm still tried would fail.
const env: NodeJS.ProcessEnv = { ...process.env };
for (const k of Object.keys(env))
  if (/^npm_(lifecycle|package|config_)/i.test(k) && k !== 'npm_config_cache') delete env[k];
Object.assign(env, {
  PATH: bin,
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  npm_config_proxy: 'http://127.0.0.1:9',
  npm_config_https_proxy: 'http://127.0.0.1:9',
  HTTP_PROXY: 'http://127.0.0.1:9',
  HTTPS_PROXY: 'http://127.0.0.1:9',
});

let tarball: string;
let packed: { size: number; files: Array<{ path: string }> };
/** name → `file:<tarball>` for every package the installed vitmsn needs at run time. */
let localDeps: Record<string, string>;

function npm(args: string[], cwd: string): string {
  return execFileSync(process.execPath, [NPM_CLI, ...args], {
    cwd,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * The installed folders of vitmsn's runtime dependency closure: `dependencies`, plus the
 * `optionalDependencies` that npm installed here (sharp's platform packages for this machine),
 * resolved as Node does, from the requiring package's folder upwards.
 */
function runtimeDependencyDirs(): Map<string, string> {
  const found = new Map<string, string>();
  const readPkg = (dir: string) =>
    JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
  const locate = (name: string, from: string): string | undefined => {
    for (let dir = from; ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', name);
      if (existsSync(path.join(candidate, 'package.json'))) return candidate;
      if (dir === ROOT || path.dirname(dir) === dir) return undefined;
    }
  };
  const visit = (dir: string) => {
    const pkg = readPkg(dir);
    const required = Object.keys(pkg.dependencies ?? {});
    const optional = Object.keys(pkg.optionalDependencies ?? {});
    for (const name of [...required, ...optional]) {
      if (found.has(name)) continue;
      const at = locate(name, dir);
      if (!at) {
        if (required.includes(name)) throw new Error(`${name} (needed by ${dir}) is not installed; run npm ci`);
        continue; // an optional dependency for another platform
      }
      found.set(name, at);
      visit(at);
    }
  };
  visit(ROOT);
  return found;
}

beforeAll(() => {
  mkdirSync(bin);
  symlinkSync(realpathSync(process.execPath), path.join(bin, 'node'));
  symlinkSync(realpathSync('/bin/sh'), path.join(bin, 'sh'));
  // The CMake build (npm test's `npm run build`) becomes prebuilds/<platform>-<arch>/.
  const hasBuild = existsSync(path.join(ROOT, 'build-cmake', 'Release', 'vitmsn.node'));
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'prebuild.mjs'), ...(hasBuild ? ['--no-build'] : [])], {
    cwd: ROOT,
    stdio: 'pipe',
  });
  const out = execFileSync(process.execPath, [NPM_CLI, 'pack', '--json', '--pack-destination', tmp], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  packed = JSON.parse(out)[0];
  tarball = path.join(tmp, (packed as unknown as { filename: string }).filename);

  const depsDir = path.join(tmp, 'deps');
  mkdirSync(depsDir);
  const dirs = runtimeDependencyDirs();
  const depPacks = JSON.parse(
    execFileSync(
      process.execPath,
      [NPM_CLI, 'pack', '--json', '--ignore-scripts', '--pack-destination', depsDir, ...dirs.values()],
      { cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  ) as Array<{ name: string; filename: string }>;
  localDeps = Object.fromEntries(depPacks.map((p) => [p.name, `file:${path.join(depsDir, p.filename)}`]));
  expect(Object.keys(localDeps).sort()).toEqual([...dirs.keys()].sort());
}, 600_000);

describe('npm package', () => {
  it('ships dist, the prebuild and the source-build inputs only; small', () => {
    const files = packed.files.map((f) => f.path);
    console.log(`tarball ${path.basename(tarball)}: ${packed.size} bytes, ${files.length} files`);
    expect(files).toContain(`prebuilds/${process.platform}-${process.arch}/vitmsn.node.napi.glibc.node`);
    for (const f of [
      'dist/index.js',
      'dist/index.mjs',
      'dist/index.d.ts',
      'binding.gyp',
      'scripts/gyp-sources.js',
      'native/engine/io/pickle_reader.cc',
      'native/common/error.h',
      'native/binding/addon.cc',
      'native/cpu/gemm.cc',
      'package.json',
      'README.md',
    ]) {
      expect(files).toContain(f);
    }
    expect(
      files.filter(
        (f) => /^(test|bench|build|build-cmake|native\/tests|node_modules|lib)\//.test(f) || f.endsWith('.tgz'),
      ),
    ).toEqual([]);
    expect(packed.size).toBeLessThan(3_000_000);
  });

  it('installs offline without a compiler; require() and import() load the prebuild and encode', () => {
    const proj = path.join(tmp, 'consumer');
    mkdirSync(proj);
    // Approve vitmsn's install script (npm 11 blocks it otherwise): node-gyp-build must find the
    // prebuild and load it instead of compiling, which would fail here.
    // `overrides` points every dependency edge at a local tarball: nothing is resolved from the
    // registry or npm's cache.
    writeFileSync(
      path.join(proj, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        version: '1.0.0',
        private: true,
        allowScripts: { [`file:${tarball}`]: true },
        overrides: localDeps,
      }),
    );
    const log = npm(['install', tarball, '--offline', '--foreground-scripts'], proj);
    expect(log).toMatch(/node-gyp-build/); // the install script ran
    expect(log).not.toMatch(/install-scripts/); // …because it was approved, not skipped
    const pkg = path.join(proj, 'node_modules', 'vitmsn');
    expect(existsSync(path.join(pkg, 'build'))).toBe(false); // nothing was compiled
    // Every installed package came from a local tarball (none from the registry or a cache of it).
    // The lockfile also lists optional platform packages for other systems (msgpackr-extract's,
    // under BullMQ) that npm left out: only the packages on disk must come from a tarball.
    const lock = JSON.parse(readFileSync(path.join(proj, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { resolved?: string; optional?: boolean }>;
    };
    const listed = Object.entries(lock.packages).filter(([k]) => k !== '');
    const installed = listed.filter(([k]) => existsSync(path.join(proj, k, 'package.json')));
    for (const [k, v] of listed)
      if (!installed.some(([i]) => i === k)) expect(v.optional, `${k} is listed but not installed`).toBe(true);
    expect(installed.length).toBe(Object.keys(localDeps).length + 1);
    for (const [k, v] of installed) expect(v.resolved ?? '', k).toMatch(/^file:/);

    const model = path.join(tmp, 'model');
    cpSync(goldenDir('tiny-s8'), model, { recursive: true });
    const script = (load: string) => `
      ${load}
      const image = { data: new Uint8Array(40 * 40 * 3).map((_, i) => (i * 7) % 251), width: 40, height: 40, channels: 3 };
      const m = await v.loadModel(${JSON.stringify(model)}, { device: 'cpu', threads: 1 });
      const out = await m.encode([image]);
      await m.dispose();
      console.log(JSON.stringify({
        addon: require('node-gyp-build').path(${JSON.stringify(pkg)}),
        backends: v.backends().map((b) => b.name + ':' + b.compiled),
        data: Buffer.from(out.data.buffer).toString('base64'),
      }));`;
    const cjs = `const v = require('vitmsn'); (async () => { ${script('')} })().catch((e) => { console.error(e); process.exit(1); });`;
    const esm = `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);
      const v = await import('vitmsn'); if (typeof v.loadModel !== 'function') throw new Error('no loadModel export'); ${script('')}`;
    const results = [
      spawnSync(process.execPath, ['-e', cjs], { cwd: proj, env, encoding: 'utf8' }),
      spawnSync(process.execPath, ['--input-type=module', '-e', esm], { cwd: proj, env, encoding: 'utf8' }),
    ].map((r) => {
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      return JSON.parse(r.stdout) as { addon: string; data: string; backends: string[] };
    });
    return (async () => {
      const m = await loadModel(model, { device: 'cpu', threads: 1 });
      const image = {
        data: new Uint8Array(40 * 40 * 3).map((_, i) => (i * 7) % 251),
        width: 40,
        height: 40,
        channels: 3 as const,
      };
      const want = Buffer.from((await m.encode([image])).data.buffer).toString('base64');
      await m.dispose();
      for (const r of results) {
        expect(r.addon).toBe(
          path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`, 'vitmsn.node.napi.glibc.node'),
        );
        expect(r.data).toBe(want);
        // The prebuild is the CMake build: the CUDA part is compiled in whenever the build had nvcc.
        expect(r.backends).toEqual(backends().map((b) => `${b.name}:${b.compiled}`));
      }
    })();
  });

  it('without a fitting prebuild the install script tries to compile (and here, with no compiler, fails)', () => {
    const copy = path.join(tmp, 'no-prebuild');
    cpSync(path.join(tmp, 'consumer', 'node_modules'), path.join(copy, 'node_modules'), {
      recursive: true,
      dereference: true,
    });
    const pkg = path.join(copy, 'node_modules', 'vitmsn');
    rmSync(path.join(pkg, 'prebuilds'), { recursive: true });
    const r = spawnSync(process.execPath, [path.join(copy, 'node_modules', 'node-gyp-build', 'bin.js')], {
      cwd: pkg,
      env: { ...env, PATH: `${path.join(copy, 'node_modules', '.bin')}:${bin}` },
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(existsSync(path.join(pkg, 'build', 'Release', 'vitmsn.node'))).toBe(false);
    expect(readFileSync(path.join(pkg, 'package.json'), 'utf8')).toMatch(/"install": "node-gyp-build"/);
  });
});
