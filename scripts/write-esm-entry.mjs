// Writes dist/index.mjs: an ES-module face over the CommonJS build, so `import { loadModel } from
// 'vitmsn'` and `require('vitmsn')` share one module instance (no dual-package state).
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const names = Object.keys(createRequire(import.meta.url)(path.join(dist, 'index.js'))).filter((n) => n !== 'default');
const text = `import cjs from './index.js';\nexport const { ${names.join(', ')} } = cjs;\nexport default cjs;\n`;
writeFileSync(path.join(dist, 'index.mjs'), text);
writeFileSync(path.join(dist, 'index.d.mts'), "export * from './index.js';\n");
