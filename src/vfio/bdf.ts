import { VfioError } from './errors.js';

/** domain:bus:device.function in lowercase hex, exactly as sysfs names it. Nothing else gets near a path. */
const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;

export function validateBdf(bdf: string): string {
  if (typeof bdf !== 'string' || !BDF.test(bdf)) {
    throw new VfioError(`invalid PCI address ${JSON.stringify(bdf)}: expected dddd:bb:dd.f in lowercase hex, e.g. 0000:00:01.0`, { code: 'BAD_BDF' });
  }
  return bdf;
}
