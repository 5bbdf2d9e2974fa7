// Short form of scripts/fuzz.mjs (seeded fuzzing of images, model folders and forward() arguments,
// each case in a child process): a fixed seed for ~25 s must give no crash, hang, wrong success,
// wrong rejection or uncoded error. A second run injects faults into the harness's child to show that
// each kind of failure is caught, counted and saved. Uses the built dist/; writes only in a temp dir.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = path.join(__dirname, '..', 'scripts', 'fuzz.mjs');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'vitmsn-fuzz-test-'));

interface Summary {
  seed: number;
  inputs: number;
  failures: number;
  crash: number;
  hang: number;
  wrongSuccess: number;
  wrongReject: number;
  uncoded: number;
  accepted: number;
  coded: number;
}

function runFuzz(args: string[], env: Record<string, string> = {}, timeoutMs = 110_000) {
  return new Promise<{ status: number | null; stdout: string; stderr: string; summary: Summary | undefined }>(
    (resolve) => {
      const child = spawn(process.execPath, [SCRIPT, ...args], {
        env: { ...process.env, TMPDIR: TMP, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '',
        stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (status) => {
        clearTimeout(timer);
        const line = /^FUZZ-SUMMARY (.*)$/m.exec(stdout)?.[1];
        resolve({ status, stdout, stderr, summary: line ? (JSON.parse(line) as Summary) : undefined });
      });
    },
  );
}

afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

describe('fuzzing (scripts/fuzz.mjs)', () => {
  it('seed 20240601 for 25 s: hundreds of inputs, no crash, hang, wrong success or uncoded error', async () => {
    const r = await runFuzz(['--seed', '20240601', '--seconds', '25']);
    const detail = `exit ${r.status}\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-4000)}`;
    expect(r.summary, detail).toBeDefined();
    const s = r.summary!;
    expect(s.inputs, detail).toBeGreaterThanOrEqual(300);
    expect(
      { crash: s.crash, hang: s.hang, wrongSuccess: s.wrongSuccess, wrongReject: s.wrongReject, uncoded: s.uncoded },
      detail,
    ).toEqual({ crash: 0, hang: 0, wrongSuccess: 0, wrongReject: 0, uncoded: 0 });
    expect(s.accepted, detail).toBeGreaterThan(0);
    expect(s.coded, detail).toBeGreaterThan(0);
    expect(r.status, detail).toBe(0);
    for (const cat of ['image', 'model', 'forward'])
      expect(r.stdout, detail).toMatch(new RegExp(`^\\| ${cat} \\| [1-9]`, 'm'));
  });

  it('catches an injected crash, hang and uncoded error, exits 1 and saves each case with a repro', async () => {
    const r = await runFuzz(['--seed', '7', '--seconds', '4', '--case-timeout', '1500'], {
      VITMSN_FUZZ_INJECT: 'crash@2,hang@4,uncoded@6',
    });
    const detail = `exit ${r.status}\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-4000)}`;
    expect(r.status, detail).toBe(1);
    expect(r.summary, detail).toMatchObject({
      crash: 1,
      hang: 1,
      uncoded: 1,
      wrongSuccess: 0,
      wrongReject: 0,
      failures: 3,
    });
    expect(r.summary!.inputs, detail).toBeGreaterThan(6); // the run goes on after a crash and a hang
    const saved = /saved under (.*)\)/.exec(r.stdout)?.[1];
    expect(saved && saved.startsWith(TMP), detail).toBe(true);
    const dirs = fs.readdirSync(saved!).sort();
    expect(
      dirs.map((d) => d.replace(/^\d+-\w+-/, '')),
      detail,
    ).toEqual(['crash', 'hang', 'uncoded']);
    for (const d of dirs) {
      expect(fs.existsSync(path.join(saved!, d, 'case.json'))).toBe(true);
      expect(fs.existsSync(path.join(saved!, d, 'repro.mjs'))).toBe(true);
    }
  });
});
