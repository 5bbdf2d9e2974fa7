// Prints the addon's C++ sources for binding.gyp (gyp has no glob): everything CMake's CPU build
// compiles, i.e. native/{binding,common,engine/*,backend,cpu}/*.cc, as paths relative to the package
// root.
// The ISA kernel files are compiled for their architecture only (native/cpu/isa_target.h):
//   node scripts/gyp-sources.js          the portable sources (every architecture)
//   node scripts/gyp-sources.js x86      native/cpu/*_avx2.cc, *_avx512.cc
//   node scripts/gyp-sources.js arm64    native/cpu/*_neon.cc
// CMakeLists.txt splits them by the same file-name suffixes.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const engine = fs
  .readdirSync(path.join(root, 'native/engine'), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => `native/engine/${e.name}`)
  .sort();
const dirs = ['native/binding', 'native/common', ...engine, 'native/backend', 'native/cpu'];
const kernels = { x86: /_(avx2|avx512)\.cc$/, arm64: /_neon\.cc$/ };
const which = process.argv[2] || 'portable';
if (which !== 'portable' && !kernels[which]) {
  process.stderr.write(`gyp-sources.js: unknown set '${which}' (portable, x86 or arm64)\n`);
  process.exit(2);
}
const isKernel = (f) => Object.values(kernels).some((re) => re.test(f));
const files = dirs.flatMap((d) =>
  fs
    .readdirSync(path.join(root, d))
    .filter((f) => f.endsWith('.cc'))
    .sort()
    .map((f) => `${d}/${f}`),
);
const picked = files.filter((f) => (which === 'portable' ? !isKernel(f) : kernels[which].test(f)));
process.stdout.write(picked.join(' '));
