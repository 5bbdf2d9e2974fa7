// One table of knobs (native/common/knobs.cc): every VITMSN_* switch is read through it, the
// README's table is generated from it, `vitmsn info` shows it, and a bad value is refused the same
// way for every switch. Searching the sources makes a second, hand-parsed switch fail here.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { native } from '../lib/binding';
import { goldenDir } from './support/goldens';

const root = path.join(__dirname, '..');
const run = promisify(execFile);

function files(dir: string, exts: RegExp): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? (n === 'tests' ? [] : files(p, exts)) : exts.test(n) ? [p] : [];
  });
}

describe('the knob table', () => {
  const knobs = native().knobs();

  it('is the only reader of VITMSN_* variables', () => {
    for (const f of files(path.join(root, 'native'), /\.(cc|h|cu|cuh|inc)$/)) {
      expect(readFileSync(f, 'utf8'), path.relative(root, f)).not.toMatch(/getenv\(\s*"VITMSN_/);
    }
    for (const f of files(path.join(root, 'lib'), /\.ts$/)) {
      expect(readFileSync(f, 'utf8'), path.relative(root, f)).not.toMatch(/process\.env\.VITMSN_|env\[['"]VITMSN_/);
    }
    // Every switch named anywhere in the addon's sources is a row of the table.
    const names = new Set(knobs.map((k) => k.name));
    for (const f of files(path.join(root, 'native'), /\.(cc|h|cu|cuh|inc)$/)) {
      for (const m of readFileSync(f, 'utf8').matchAll(/VITMSN_[A-Z0-9_]+(?==)/g)) {
        expect(names.has(m[0]), `${m[0]} in ${path.relative(root, f)}`).toBe(true);
      }
    }
  });

  it('has one row per switch, each documented', () => {
    expect(new Set(knobs.map((k) => k.name)).size).toBe(knobs.length);
    for (const k of knobs) {
      expect(k.name).toMatch(/^VITMSN_[A-Z0-9_]+$/);
      expect(k.meaning.length, k.name).toBeGreaterThan(15);
      expect(['once per process', 'when a backend is made']).toContain(k.read);
    }
  });

  it('is the README table, as scripts/knob-table.mjs writes it', async () => {
    const { stdout } = await run(process.execPath, [path.join(root, 'scripts', 'knob-table.mjs')]);
    expect(readFileSync(path.join(root, 'README.md'), 'utf8')).toContain(stdout.trim());
  });

  it('vitmsn info shows it with the values in effect', async () => {
    const env = { ...process.env, VITMSN_SPIN_US: '250' };
    const { stdout } = await run(process.execPath, [path.join(root, 'dist', 'cli.js'), 'info', '--json'], { env });
    const shown = JSON.parse(stdout).knobs as Array<{ name: string; value: string }>;
    expect(shown.map((k) => k.name)).toEqual(knobs.map((k) => k.name));
    expect(shown.find((k) => k.name === 'VITMSN_SPIN_US')?.value).toBe('250');
  });

  it('a bad value fails the load the same way for every switch, naming it', async () => {
    // Each in a fresh process: CPU switches read once per process are read at the first load.
    const script = `require(${JSON.stringify(path.join(root, 'dist', 'index.js'))}).loadModel(${JSON.stringify(goldenDir('tiny-s8'))}, { device: 'cpu' })
      .then(() => console.log(JSON.stringify({ ok: true })), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`;
    for (const [name, value] of [
      ['VITMSN_CPU_MLP', 'fusd'],
      ['VITMSN_SPIN_US', '-3'],
      ['VITMSN_SPIN_US', '12abc'],
      ['VITMSN_CPU_PROFILE', 'yes'],
    ]) {
      const { stdout } = await run(process.execPath, ['-e', script], { env: { ...process.env, [name]: value } });
      const res = JSON.parse(stdout);
      expect(res.code, `${name}=${value}`).toBe('ERR_DEVICE_UNAVAILABLE');
      expect(res.message).toContain(`${name}='${value}'`);
    }
    const { stdout } = await run(process.execPath, ['-e', script], {
      env: { ...process.env, VITMSN_CPU_MLP: 'unfused', VITMSN_SPIN_US: '0' },
    });
    expect(JSON.parse(stdout)).toEqual({ ok: true });
  }, 60_000);
});
