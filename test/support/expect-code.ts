// A settled call's rejection with a VitMsnError of the given code (and message), for tests that
// settle a call first (with a time bound) and judge it after.
import { expect } from 'vitest';
import { VitMsnError, type ErrorCode } from '../../lib/index';

export function expectCode(r: PromiseSettledResult<unknown>, code: ErrorCode, message?: RegExp) {
  expect(r.status, 'expected a rejection').toBe('rejected');
  const err = (r as PromiseRejectedResult).reason;
  expect(err).toBeInstanceOf(VitMsnError);
  expect((err as VitMsnError).code, (err as Error).message).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
}
