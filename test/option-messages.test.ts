// Messages about a wrong argument show the value received as JavaScript would print it: a NaN is
// "NaN" (JSON.stringify would say "null", which the caller never passed), undefined is "undefined".
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, VitMsnError, type Model } from '../lib/index';
import { formatValue } from '../lib/format-value';
import { goldenDir } from './support/goldens';

const jpeg = path.join(__dirname, 'fixtures', 'pil', 'rgb420.jpg');

async function message(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(VitMsnError);
  expect((err as VitMsnError).code).toBe('ERR_INVALID_ARGUMENT');
  return (err as Error).message;
}

let model: Model;
beforeAll(async () => {
  model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu' });
});
afterAll(() => model?.dispose());

describe('formatValue', () => {
  it('prints what the caller passed', () => {
    expect(formatValue(NaN)).toBe('NaN');
    expect(formatValue(-Infinity)).toBe('-Infinity');
    expect(formatValue(-0)).toBe('-0');
    expect(formatValue(1.5)).toBe('1.5');
    expect(formatValue(undefined)).toBe('undefined');
    expect(formatValue(null)).toBe('null');
    expect(formatValue('cuda:x')).toBe('"cuda:x"');
    expect(formatValue(10n)).toBe('10n');
    expect(formatValue([1, NaN, 'a'])).toBe('[1, NaN, "a"]');
    expect(formatValue({ a: NaN })).toBe('{"a": NaN}');
    expect(formatValue(() => 1)).toBe('a function');
    expect(formatValue(new Float32Array(3))).toBe('a Float32Array of length 3');
    expect(formatValue('x'.repeat(500)).length).toBeLessThan(120);
  });
});

describe('messages name a NaN as NaN', () => {
  it('image options', async () => {
    expect(await message(model.encode(jpeg, { maxPixels: NaN }))).toMatch(/maxPixels .*got NaN/);
    expect(await message(model.encode(jpeg, { maxBytes: NaN }))).toMatch(/maxBytes .*got NaN/);
    expect(await message(model.encode(jpeg, { batchSize: NaN }))).toMatch(/batchSize .*got NaN/);
    expect(await message(model.encode({ data: new Uint8Array(3), width: NaN, height: 1, channels: 3 }))).toMatch(
      /width .*got NaN/,
    );
    expect(await message(model.encode({ data: new Uint8Array(3), width: 1, height: 1, channels: NaN as 3 }))).toMatch(
      /channels .*got NaN/,
    );
    expect(await message(model.encode(jpeg, { pooling: NaN as never }))).toMatch(/pooling .*got NaN/);
  });
  it('load and forward options', async () => {
    expect(await message(loadModel(goldenDir('tiny-s8'), { threads: NaN }))).toMatch(/threads .*got NaN/);
    expect(await message(model.forward(new Float32Array(3), [1, 3, NaN, 1]))).toMatch(/got \[1, 3, NaN, 1\]/);
  });
});
