// PNG colour-profile (iCCP) chunks are handled as Pillow's PngImagePlugin handles them, since HF
// opens images with PIL: a profile whose zlib data is corrupt is dropped and the image decodes
// (Pillow catches zlib.error and sets icc_profile to None), while a compression method other than
// 0, a chunk with no method byte, or a profile over 1 MiB once decompressed make PIL refuse the
// file (SyntaxError / "Decompressed Data Too Large"), so vitmsn refuses it too.
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, VitMsnError, type Model } from '../lib/index';
import { goldenDir } from './support/goldens';
import { chunk, rgbPng } from './support/png';

let model: Model;
beforeAll(async () => {
  model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu' });
});
afterAll(() => model?.dispose());

const iccp = (method: number, payload: Buffer) =>
  chunk('iCCP', Buffer.concat([Buffer.from('ICC Profile\0', 'latin1'), Buffer.from([method]), payload]));

async function pixels(png: Buffer) {
  return Array.from((await model.preprocess(png)).data);
}

async function refusal(png: Buffer): Promise<VitMsnError> {
  const err = await model.preprocess(png).then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(VitMsnError);
  return err as VitMsnError;
}

describe('PNG iCCP chunks, as Pillow reads them', () => {
  it('corrupt zlib data in the profile: the profile is ignored, the pixels are the same', async () => {
    const plain = await pixels(rgbPng(16, 12));
    expect(await pixels(rgbPng(16, 12, [iccp(0, Buffer.from('this is not zlib data'))]))).toEqual(plain);
    expect(await pixels(rgbPng(16, 12, [iccp(0, deflateSync(Buffer.alloc(4000, 3)).subarray(0, 12))]))).toEqual(plain); // truncated
    expect(await pixels(rgbPng(16, 12, [iccp(0, deflateSync(Buffer.alloc(300, 7)))]))).toEqual(plain); // not a valid profile
  });

  it('a compression method other than 0 is refused', async () => {
    const e = await refusal(rgbPng(16, 12, [iccp(1, deflateSync(Buffer.alloc(300)))]));
    expect(e.code).toBe('ERR_IMAGE_INVALID');
    expect(e.message).toMatch(/iCCP.*compression method 1/);
  });

  it('a chunk without the method byte is refused', async () => {
    const e = await refusal(rgbPng(16, 12, [chunk('iCCP', Buffer.from('name-only\0', 'latin1'))]));
    expect(e.code).toBe('ERR_IMAGE_INVALID');
    expect(e.message).toMatch(/iCCP/);
  });

  it('a profile over 1 MiB once decompressed is refused; exactly 1 MiB is not', async () => {
    const e = await refusal(rgbPng(16, 12, [iccp(0, deflateSync(Buffer.alloc(2 ** 20 + 1)))]));
    expect(e.code).toBe('ERR_IMAGE_INVALID');
    expect(e.message).toMatch(/iCCP.*1048576/);
    expect(await pixels(rgbPng(16, 12, [iccp(0, deflateSync(Buffer.alloc(2 ** 20)))]))).toEqual(
      await pixels(rgbPng(16, 12)),
    );
  });
});
