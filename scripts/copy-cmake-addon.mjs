// cmake-js writes the addon to build-cmake/Release/; node-gyp-build looks in build/Release/ (then
// prebuilds/). Copying it there makes the full CMake build (CUDA part included) the one that loads.
import { copyFileSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'build-cmake', 'Release', 'vitmsn.node');
if (!existsSync(src)) {
  console.error(`copy-cmake-addon: ${src} is missing; did cmake-js build fail?`);
  process.exit(1);
}
mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
copyFileSync(src, path.join(root, 'build', 'Release', 'vitmsn.node'));
console.log('addon: build-cmake/Release/vitmsn.node -> build/Release/vitmsn.node');
