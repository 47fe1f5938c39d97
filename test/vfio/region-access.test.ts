import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { RegionAccess, VfioError, readRegion, readRegionBytes, writeRegion, writeRegionBytes } from '../../src/vfio/index.js';
import { qemuNvme } from '../helpers/profiles.js';
import { fakeDevice } from '../guest/fake-device.js';
import { qemuNvmeConfigSpace } from './fixtures.js';
import { captureError } from '../helpers/capture-error.js';

describe('readRegion / writeRegion', () => {
  it('reads and writes 1, 2, 4 and 8 bytes little-endian at regionOffset + offset', () => {
    const { kernel, handle } = fakeDevice(qemuNvme, qemuNvmeConfigSpace());
    kernel.regions.bytes(0).writeBigUInt64LE(0x0123_4567_89ab_cdefn, 0x10);
    expect(readRegion(handle, 0, 0x10n, 1)).toBe(0xef);
    expect(readRegion(handle, 0, 0x10n, 2)).toBe(0xcdef);
    expect(readRegion(handle, 0, 0x10n, 4)).toBe(0x89ab_cdef);
    expect(readRegion(handle, 0, 0x10n, 8)).toBe(0x0123_4567_89ab_cdefn);
    writeRegion(handle, 0, 0x3ff8n, 8, 0xfeed_face_cafe_beefn);
    writeRegion(handle, 0, 0x20n, 4, 0xdead_beef);
    writeRegion(handle, 0, 0x24n, 2, 0x1234);
    writeRegion(handle, 0, 0x26n, 1, 0x56);
    expect(kernel.regions.bytes(0).readBigUInt64LE(0x3ff8)).toBe(0xfeed_face_cafe_beefn);
    expect(kernel.regions.bytes(0).readBigUInt64LE(0x20)).toBe(0x0056_1234_dead_beefn);
    expect(kernel.calls.filter((c) => c.name === 'pread').map((c) => c.detail)).toContain(`${handle.fd}@10`);
    expect(readRegion(handle, 7, 0n, 4)).toBe(0x0010_1b36); // config space: vendor/device
    const bulk = Buffer.alloc(16);
    readRegionBytes(handle, 0, 0x3ff0n, bulk);
    expect(bulk.readBigUInt64LE(8)).toBe(0xfeed_face_cafe_beefn);
    writeRegionBytes(handle, 0, 0x100n, Buffer.from('abcdef'));
    expect(kernel.regions.bytes(0).subarray(0x100, 0x106).toString()).toBe('abcdef');
  });

  it('refuses out-of-range accesses, missing or read-only regions and bad values with typed errors', () => {
    const { handle } = fakeDevice(qemuNvme, qemuNvmeConfigSpace());
    const access = new RegionAccess(handle);
    expect(captureError(() => access.read(0, 0x3ffdn, 4))).toMatchObject({ code: 'OUT_OF_RANGE', region: 0, bdf: qemuNvme.bdf });
    expect(captureError(() => access.read(0, -1n, 1))).toMatchObject({ code: 'OUT_OF_RANGE' });
    expect(captureError(() => access.write(0, 0x4000n, 1, 0))).toMatchObject({ code: 'OUT_OF_RANGE' });
    expect(captureError(() => access.read(8, 0n, 4))).toMatchObject({ code: 'NO_SUCH_REGION', region: 8 });
    expect(captureError(() => access.read(6, 0n, 4))).toMatchObject({ code: 'NOT_READABLE', region: 6 });
    expect(() => access.write(0, 0n, 1, 0x100)).toThrow(RangeError);
    expect(() => access.write(0, 0n, 8, -1n)).toThrow(RangeError);
    expect(() => access.read(0, 0n, 3 as 4)).toThrow(RangeError);
  });

  it('a short read is EIO and a failing pread keeps its errno, both naming device and region', () => {
    const { kernel, handle } = fakeDevice(
      { ...qemuNvme, regions: qemuNvme.regions.map((r) => (r.index === 7 ? { ...r, size: 0x2000n } : r)) },
      qemuNvmeConfigSpace(),
    );
    // The description claims 8 KiB of config space; the device serves 4 KiB: the kernel cuts the read short.
    const short = captureError(() => readRegion(handle, 7, 0xffen, 4));
    expect(short).toBeInstanceOf(VfioError);
    expect(short).toMatchObject({ code: 'EIO', errno: constants.errno.EIO, region: 7, bdf: qemuNvme.bdf });
    kernel.failWhen((c) => c.name === 'pwrite', constants.errno.EIO, true);
    expect(captureError(() => writeRegion(handle, 0, 0n, 4, 1))).toMatchObject({ code: 'EIO', region: 0 });
    kernel.failWhen((c) => c.name === 'pread', constants.errno.ENODEV, true);
    expect(captureError(() => readRegion(handle, 0, 0n, 4))).toMatchObject({ code: 'ENODEV', region: 0 });
  });
});
