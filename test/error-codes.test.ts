// One list of error codes: ERROR_CODES in lib/errors.ts. The addon's codes live in one C++ header
// (`namespace codes`), each must be a key of that list, and no other native file spells a code
// out. A second list creeping back (in TS or C++) fails here.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../lib/errors';
import { SERVER_CODES } from '../lib/serve/http-errors';

const root = path.join(__dirname, '..');

function files(dir: string, exts: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, exts));
    else if (exts.test(name)) out.push(p);
  }
  return out;
}

const CODE = /["'`](ERR_[A-Z0-9_]+)["'`]/g;
const nativeSources = files(path.join(root, 'native'), /\.(cc|h|cu|cuh|inc)$/).filter(
  (f) => !f.includes(`${path.sep}tests${path.sep}`),
);

describe('error codes have one source', () => {
  it('every code the addon can throw is in ERROR_CODES, and only one header spells them', () => {
    const spelled = new Map<string, string[]>();
    for (const f of nativeSources) {
      for (const m of readFileSync(f, 'utf8').matchAll(CODE)) spelled.set(f, [...(spelled.get(f) ?? []), m[1]]);
    }
    const headers = [...spelled.keys()].map((f) => path.relative(root, f));
    expect(headers, 'native files that spell out an ERR_ code (use codes::k… from the error header)').toHaveLength(1);
    const [header, codes] = [...spelled.entries()][0];
    expect(readFileSync(header, 'utf8')).toMatch(/namespace codes/);
    for (const c of codes) expect(Object.keys(ERROR_CODES), `${c} (from ${path.relative(root, header)})`).toContain(c);
  });

  it("lib/ names no code outside ERROR_CODES (and the server's own SERVER_CODES) and keeps no second list", () => {
    const known = new Set(Object.keys(ERROR_CODES));
    const serverOnly = Object.keys(SERVER_CODES).filter((c) => !known.has(c));
    expect(serverOnly.length).toBeGreaterThan(0);
    for (const f of files(path.join(root, 'lib'), /\.ts$/)) {
      const text = readFileSync(f, 'utf8');
      const found = [...text.matchAll(CODE)]
        // Node's own codes are only ever compared against (`e.code === 'ERR_…'`).
        .filter((m) => !/[=!]==\s*$/.test(text.slice(Math.max(0, m.index - 8), m.index)))
        .map((m) => m[1])
        .filter((c) => !serverOnly.includes(c) || f.includes(`${path.sep}serve${path.sep}`));
      for (const c of found)
        expect(known.has(c) || serverOnly.includes(c), `${c} in ${path.relative(root, f)}`).toBe(true);
      if (!f.endsWith(`${path.sep}errors.ts`)) {
        // A file that needs every code types it as Record<ErrorCode, …> instead of listing them.
        expect(
          new Set(found).size,
          `${path.relative(root, f)} lists many codes: derive it from ERROR_CODES`,
        ).toBeLessThan(known.size / 2);
      }
    }
  });

  it('every code has a meaning', () => {
    for (const [code, meaning] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^ERR_[A-Z0-9_]+$/);
      expect(meaning.length, code).toBeGreaterThan(10);
    }
  });
});
