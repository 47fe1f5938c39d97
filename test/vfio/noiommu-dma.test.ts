/**
 * noiommu DMA: nothing translates a device's addresses, so guest memory is usable for DMA only at IOVA = its
 * host physical address. physicalExtents reads /proc/self/pagemap; mapGuestMemory under noiommu checks the
 * identity instead of programming an IOMMU. Against the fake kernel's pagemap.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { constants } from 'node:os';
import { IommuContext, VfioDevice, physicalExtents, type VfioError } from '../../src/index.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { captureError } from '../helpers/capture-error.js';
import { multiSetup } from './multi-fixtures.js';

const NOIOMMU = '0000:00:03.0';
const RAM = 0x7f00_0000_0000n;
const PHYS = 0x6000_0000n;
const MiB = 0x10_0000n;

describe('physicalExtents', () => {
  it('merges physically contiguous pages and splits where the physical address jumps', () => {
    const kernel = new FakeKernel();
    kernel.pagemap.place(RAM, 0x3000n, PHYS);
    kernel.pagemap.place(RAM + 0x3000n, 0x1000n, 0x9000_0000n);
    expect(physicalExtents(RAM, 0x4000n, { syscalls: kernel })).toEqual([
      { hostAddress: RAM, physicalAddress: PHYS, size: 0x3000n },
      { hostAddress: RAM + 0x3000n, physicalAddress: 0x9000_0000n, size: 0x1000n },
    ]);
    expect(kernel.live().fds).toBe(0);
  });

  it('reads large ranges in bounded chunks (64 KiB of pagemap per pread)', () => {
    const kernel = new FakeKernel();
    kernel.pagemap.place(RAM, 256n * MiB, PHYS);
    expect(physicalExtents(RAM, 256n * MiB, { syscalls: kernel })).toEqual([{ hostAddress: RAM, physicalAddress: PHYS, size: 256n * MiB }]);
    const preads = kernel.calls.filter((c) => c.name === 'pread').length;
    expect(preads).toBe((256 * 256) / 8192);
  });

  it('typed errors: not resident, PFNs hidden without CAP_SYS_ADMIN, too fragmented, bad ranges', () => {
    const kernel = new FakeKernel();
    expect(captureError(() => physicalExtents(RAM, 0x1000n, { syscalls: kernel }))).toMatchObject({ code: 'NOT_RESIDENT' });
    kernel.pagemap.place(RAM, 0x1000n, PHYS);
    kernel.pagemap.place(RAM + 0x1000n, 0x1000n, PHYS + 0x10_000n);
    const fragmented = captureError(() => physicalExtents(RAM, 0x2000n, { syscalls: kernel, maxExtents: 1 }));
    expect(fragmented).toMatchObject({ code: 'TOO_FRAGMENTED' });
    kernel.pagemap.hidePfns = true;
    expect(captureError(() => physicalExtents(RAM, 0x1000n, { syscalls: kernel }))).toMatchObject({ code: 'PAGEMAP_HIDDEN' });
    for (const [host, size] of [[RAM + 1n, 0x1000n], [RAM, 0n], [RAM, 0x800n], [-0x1000n, 0x1000n], [(1n << 64n) - 0x1000n, 0x2000n]]) {
      expect(captureError(() => physicalExtents(host!, size!, { syscalls: kernel }))).toMatchObject({ code: 'BAD_ARGUMENT' });
    }
    expect(captureError(() => physicalExtents(RAM, 0x1000n, { syscalls: kernel, maxExtents: 0 }))).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(kernel.live().fds).toBe(0);
  });

  it('property: extents tile the range, in order, each contiguous, and adjacent ones never continue each other', () => {
    const placements = fc.array(fc.record({ pages: fc.integer({ min: 1, max: 8 }), frame: fc.integer({ min: 1, max: 64 }) }), {
      minLength: 1, maxLength: 12,
    });
    fc.assert(fc.property(placements, (runs) => {
      const kernel = new FakeKernel();
      let host = RAM;
      for (const run of runs) {
        kernel.pagemap.place(host, BigInt(run.pages) * 0x1000n, BigInt(run.frame) * 0x10_0000n);
        host += BigInt(run.pages) * 0x1000n;
      }
      const extents = physicalExtents(RAM, host - RAM, { syscalls: kernel });
      let next = RAM;
      for (const [i, extent] of extents.entries()) {
        expect(extent.hostAddress).toBe(next);
        next += extent.size;
        const previous = extents[i - 1];
        if (previous) expect(previous.physicalAddress + previous.size).not.toBe(extent.physicalAddress);
      }
      expect(next).toBe(host);
      expect(kernel.live().fds).toBe(0);
    }));
  });

  it('every syscall failing in turn: a typed error and the pagemap fd closed (a failed close releases it too)', () => {
    const setup = (): FakeKernel => {
      const kernel = new FakeKernel();
      kernel.pagemap.place(RAM, 0x2000n, PHYS);
      return kernel;
    };
    const clean = setup();
    physicalExtents(RAM, 0x2000n, { syscalls: clean });
    const calls = clean.calls.length;
    expect(calls).toBe(3);
    for (let call = 0; call < calls; call++) {
      const kernel = setup();
      kernel.failAt(call, constants.errno.EIO);
      expect(captureError(() => physicalExtents(RAM, 0x2000n, { syscalls: kernel }))).toMatchObject({ errno: constants.errno.EIO });
      expect(kernel.live().fds).toBe(0);
    }
  });
});

describe('IommuContext under noiommu: IOVA = PA', () => {
  it('guest memory at its physical address is accepted without any DMA ioctl; elsewhere NO_IOMMU says why', () => {
    const { kernel, options } = multiSetup();
    kernel.pagemap.place(RAM, 2n * MiB, PHYS);
    using context = IommuContext.open({ ...options, iommu: 'noiommu' });
    using _device = VfioDevice.open(NOIOMMU, { ...options, context });
    context.mapGuestMemory(PHYS, RAM, 2n * MiB);
    expect(context.guestMappings.map((m) => [m.iova, m.hostAddress, m.size])).toEqual([[PHYS, RAM, 2n * MiB]]);
    expect(kernel.calls.filter((c) => c.name === 'ioctl' && c.detail.includes('MAP_DMA'))).toEqual([]);
    const wrongIova = captureError(() => context.mapGuestMemory(0x4000_0000n, RAM, 2n * MiB));
    expect(wrongIova).toMatchObject({ code: 'NO_IOMMU', iova: 0x4000_0000n });
    expect((wrongIova as VfioError).message).toMatch(/is at physical 0x60000000/);
    const notResident = captureError(() => context.mapGuestMemory(0x1_0000_0000n, RAM + 4n * MiB, MiB));
    expect(notResident).toMatchObject({ code: 'NO_IOMMU' });
    expect((notResident as VfioError).cause).toMatchObject({ code: 'NOT_RESIDENT' });
    context.unmapGuestMemory(PHYS, 2n * MiB);
    expect(context.guestMappings).toEqual([]);
  });

  it('guest RAM recorded before the first (no-IOMMU) group joins is checked when it joins', () => {
    const { kernel, options } = multiSetup();
    kernel.pagemap.place(RAM, MiB, PHYS);
    using context = IommuContext.open(options);
    context.mapGuestMemory(PHYS, RAM, MiB);
    using device = VfioDevice.open(NOIOMMU, { ...options, context });
    expect(device.iommuMode).toBe('noiommu');
  });
});
