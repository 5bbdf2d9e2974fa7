// `npm run format` rewrites, `npm run format:check` (and test/format.test.ts) only checks: Prettier
// for the TypeScript and JavaScript (.prettierrc.json), clang-format for the C++ and CUDA under
// native/ (.clang-format). Both tools come from devDependencies, pinned by the lockfile, so every
// machine formats the same way.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const write = process.argv.includes('--write');

/** Files under `dir` (relative to the root) whose names match `pattern`, skipping generated folders. */
function listFiles(dir, pattern) {
  const out = [];
  const walk = (rel) => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = path.join(rel, entry.name);
      if (entry.isDirectory()) {
        if (!['node_modules', 'dist', 'build', 'build-cmake', 'prebuilds'].includes(entry.name)) walk(child);
      } else if (pattern.test(entry.name)) out.push(child);
    }
  };
  walk(dir);
  return out.sort();
}

const scripts = [
  ...['lib', 'test', 'bench', 'scripts'].flatMap((d) => listFiles(d, /\.(ts|mts|mjs|js)$/)),
  ...listFiles('.', /^vitest\.config\.mts$/).filter((f) => !f.includes(path.sep)),
];
const native = listFiles('native', /\.(cc|h|cu|cuh)$/);

function run(what, command, args) {
  try {
    execFileSync(command, args, { cwd: root, stdio: 'inherit' });
    return true;
  } catch {
    console.error(`format: ${what} ${write ? 'failed' : 'found unformatted files (run `npm run format`)'}`);
    return false;
  }
}

const prettier = path.join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs');
// The clang-format package ships binaries for x64 Linux, macOS and Windows only: elsewhere (arm64)
// the C++ check is skipped with a warning rather than failing the build.
const clangFormat = path.join(
  root,
  'node_modules',
  'clang-format',
  'bin',
  `${process.platform}_${process.arch}`,
  process.platform === 'win32' ? 'clang-format.exe' : 'clang-format',
);
const ok = [
  run('prettier', process.execPath, [prettier, write ? '--write' : '--check', '--log-level', 'warn', ...scripts]),
  existsSync(clangFormat)
    ? run('clang-format', clangFormat, [...(write ? ['-i'] : ['--dry-run', '--Werror']), ...native])
    : (console.warn(`format: no clang-format binary for ${process.platform}_${process.arch}; C++ not checked`), true),
].every(Boolean);
if (ok)
  console.log(`format: ${scripts.length} TS/JS and ${native.length} C++/CUDA files ${write ? 'written' : 'formatted'}`);
process.exit(ok ? 0 : 1);
