// Prints the addon's C++ sources for binding.gyp (gyp has no glob): everything CMake's CPU build
// compiles, i.e. native/{binding,engine,backend,cpu}/*.cc, as paths relative to the package root.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const dirs = ['native/binding', 'native/engine', 'native/backend', 'native/cpu'];
const files = dirs.flatMap((d) =>
  fs.readdirSync(path.join(root, d)).filter((f) => f.endsWith('.cc')).sort().map((f) => `${d}/${f}`));
process.stdout.write(files.join(' '));
