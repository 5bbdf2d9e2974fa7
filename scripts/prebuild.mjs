// `npm run prebuild`: builds the full addon with CMake (CPU, plus the CUDA part when nvcc exists)
// and stores it as prebuilds/<platform>-<arch>/vitmsn.node.napi.<libc>.node, the name
// node-gyp-build picks for any Node (N-API, so every ABI) on that platform and C library. The
// package's install script (node-gyp-build) loads it and only compiles from source when it does not
// fit. `--no-build` copies an existing build-cmake/ output without running cmake-js.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const built = path.join(root, 'build-cmake', 'Release', 'vitmsn.node');

if (!process.argv.includes('--no-build')) {
  const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  execFileSync(process.execPath, [cmakeJs, 'build', '--out', 'build-cmake'], { cwd: root, stdio: 'inherit' });
}
if (!existsSync(built)) {
  console.error(`prebuild: ${built} is missing (run without --no-build)`);
  process.exit(1);
}

// node-gyp-build's libc tag: musl on Alpine, glibc elsewhere on Linux; no tag on other platforms.
const libc = process.platform === 'linux' ? (existsSync('/etc/alpine-release') ? 'musl' : 'glibc') : undefined;
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
for (const f of readdirSync(dir)) rmSync(path.join(dir, f)); // one binary per platform
const dest = path.join(dir, ['vitmsn', 'node', 'napi', libc, 'node'].filter(Boolean).join('.'));
copyFileSync(built, dest);
// Debug symbols are not needed at run time and are most of a release binary's size.
if (process.platform === 'linux') {
  try {
    execFileSync('strip', ['--strip-unneeded', dest]);
  } catch {
    console.warn('prebuild: strip not found; keeping symbols');
  }
}
console.log(`prebuild: ${path.relative(root, dest)} (${(statSync(dest).size / 1e6).toFixed(2)} MB)`);
