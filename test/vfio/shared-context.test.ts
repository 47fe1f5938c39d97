/**
 * Several devices in one VM: a shared IommuContext (container or iommufd IOAS), two functions of one IOMMU
 * group open at once, guest RAM DMA-mapped once, the ownership rules, and the argument checks of
 * mapGuestMemory/unmapGuestMemory — all against the fake kernel.
 */
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { IommuContext, VfioDevice, VfioError } from '../../src/index.js';
import { captureError } from '../helpers/capture-error.js';
import { multiSetup } from './multi-fixtures.js';

const FN0 = '0000:00:01.0';
const FN1 = '0000:00:01.1';
const OTHER = '0000:00:02.0';
const NOIOMMU = '0000:00:03.0';
const RAM = 0x7f00_0000_0000n;

const count = (calls: readonly { name: string; detail: string }[], name: string, detail?: string): number =>
  calls.filter((c) => c.name === name && (detail === undefined || c.detail.includes(detail))).length;

describe('IommuContext, legacy container', () => {
  it('two functions of one IOMMU group open at once: the group is opened and attached once, and shared', () => {
    const { kernel, options } = multiSetup();
    using context = IommuContext.open(options);
    expect(context.backend).toBe('container');
    expect(context.mode).toBeUndefined();
    const a = VfioDevice.open(FN0, { ...options, context });
    const b = VfioDevice.open(FN1, { ...options, context });
    expect(a.fd).not.toBe(b.fd);
    expect([a.iommuMode, b.iommuMode]).toEqual(['type1v2', 'type1v2']);
    expect(context.groups).toEqual(['7']);
    expect(count(kernel.calls, 'open', '/vfio/7')).toBe(1);
    expect(count(kernel.calls, 'VFIO_GROUP_SET_CONTAINER')).toBe(1);
    expect(count(kernel.calls, 'VFIO_SET_IOMMU')).toBe(1);
    expect(b.describe().msix?.vectors).toBe(65);
    a.close();
    expect(context.groups).toEqual(['7']); // b still uses it
    b.close();
    expect(context.groups).toEqual([]);
    expect(kernel.live().fds).toBe(1); // the container: the VMM still holds the context
    context.close();
    expect(kernel.live().fds).toBe(0);
  });

  it('without a shared context the second function of a group fails with EBUSY, as on Linux (one open per group node)', () => {
    const { kernel, options } = multiSetup();
    using first = VfioDevice.open(FN0, options);
    const error = captureError(() => VfioDevice.open(FN1, options));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'EBUSY', bdf: FN1 });
    first.close();
    expect(kernel.live().fds).toBe(0);
  });

  it('guest RAM is DMA-mapped once for every device; a mapping made before the first group waits for it', () => {
    const { kernel, options } = multiSetup();
    using context = IommuContext.open(options);
    context.mapGuestMemory(0n, RAM, 0x10_0000n);
    expect(kernel.live().dmaMaps).toBe(0); // no IOMMU before a group joins: recorded
    using a = VfioDevice.open(FN0, { ...options, context });
    expect(kernel.live().dmaMaps).toBe(1);
    using b = VfioDevice.open(OTHER, { ...options, context });
    expect(kernel.live().dmaMaps).toBe(1);
    expect(count(kernel.calls, 'VFIO_IOMMU_MAP_DMA')).toBe(1);
    expect(a.dma).toBe(b.dma);
    context.mapGuestMemory(0x10_0000n, RAM + 0x10_0000n, 0x1000n, 'read');
    expect(kernel.live().dmaMaps).toBe(2);
    context.unmapGuestMemory(0x10_0000n, 0x1000n);
    expect(context.guestMappings).toEqual([{ iova: 0n, hostAddress: RAM, size: 0x10_0000n, prot: 'read-write' }]);
  });

  it('when the last group leaves, the kernel drops the IOMMU and its maps: the next device gets them made again', () => {
    const { kernel, options } = multiSetup();
    using context = IommuContext.open(options);
    VfioDevice.open(FN0, { ...options, context }).close();
    context.mapGuestMemory(0n, RAM, 0x2000n);
    expect(kernel.live().dmaMaps).toBe(0);
    expect(context.mode).toBeUndefined();
    using device = VfioDevice.open(OTHER, { ...options, context });
    expect(device.iommuMode).toBe('type1v2');
    expect(kernel.live().dmaMaps).toBe(1);
  });

  it('the owner closing first keeps the context for its devices; the last device releases everything', () => {
    const { kernel, options } = multiSetup();
    const context = IommuContext.open(options);
    const device = VfioDevice.open(FN0, { ...options, context });
    context.mapGuestMemory(0n, RAM, 0x1000n);
    context.close();
    expect(context.closed).toBe(true);
    expect(kernel.live()).toMatchObject({ fds: 3, dmaMaps: 1 });
    expect(captureError(() => context.mapGuestMemory(0x1000n, RAM, 0x1000n))).toMatchObject({ code: 'CLOSED' });
    expect(captureError(() => VfioDevice.open(FN1, { ...options, context }))).toMatchObject({ code: 'CLOSED' });
    device.close();
    expect(kernel.live()).toMatchObject({ fds: 0, dmaMaps: 0 });
    context.close(); // idempotent
  });

  it('a noiommu group cannot join an IOMMU container, and a noiommu context has no DMA mapping', () => {
    const { kernel, options } = multiSetup();
    using context = IommuContext.open(options);
    using device = VfioDevice.open(FN0, { ...options, context });
    expect(captureError(() => VfioDevice.open(NOIOMMU, { ...options, context }))).toMatchObject({ code: 'MODE_MISMATCH', group: '9' });
    device.close();
    using noiommu = IommuContext.open({ ...options, iommu: 'noiommu' });
    using lone = VfioDevice.open(NOIOMMU, { ...options, context: noiommu });
    expect(lone.iommuMode).toBe('noiommu');
    expect(noiommu.dma).toBeUndefined();
    expect(captureError(() => noiommu.mapGuestMemory(0n, RAM, 0x1000n))).toMatchObject({ code: 'NO_IOMMU' });
    expect(captureError(() => VfioDevice.open(FN0, { ...options, context: noiommu }))).toMatchObject({ code: 'MODE_UNAVAILABLE' });
    expect(kernel.live().dmaMaps).toBe(0);
  });

  it('a no-IOMMU group cannot be the first to join a container whose waiting guest RAM is not at its physical address', () => {
    const { kernel, options } = multiSetup();
    using context = IommuContext.open(options);
    context.mapGuestMemory(0n, RAM, 0x1000n);
    const fds = kernel.live().fds;
    expect(captureError(() => VfioDevice.open(NOIOMMU, { ...options, context }))).toMatchObject({ code: 'NO_IOMMU', group: '9' });
    expect(kernel.live().fds).toBe(fds);
    using _device = VfioDevice.open(FN0, { ...options, context });
    expect(kernel.live().dmaMaps).toBe(1);
  });

  it('options that contradict the context are typed errors, before anything is opened', () => {
    const { kernel, options } = multiSetup();
    using context = IommuContext.open(options);
    const before = kernel.live().fds;
    expect(captureError(() => VfioDevice.open(FN0, { ...options, context, iommu: 'iommufd' }))).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(captureError(() => VfioDevice.open(FN0, { ...options, context: {} as IommuContext }))).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(captureError(() => VfioDevice.open(FN0, { ...options, kvm: { addFile: 1 } as never }))).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(captureError(() => IommuContext.open({ ...options, iommu: 'vfio' as never }))).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(captureError(() => VfioDevice.open(FN0, { ...options, iommu: 'vfio' as never }))).toMatchObject({ code: 'BAD_ARGUMENT' });
    const otherKernel = multiSetup().kernel;
    expect(
      captureError(() => VfioDevice.open(FN0, { ...options, context, syscalls: otherKernel }))
    ).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(kernel.live().fds).toBe(before);
  });
});

describe('IommuContext, iommufd', () => {
  it('devices bind to one iommufd and attach to one IOAS; guest RAM is mapped once; everything closes', () => {
    const { kernel, options } = multiSetup(true);
    const context = IommuContext.open(options);
    expect(context.backend).toBe('iommufd');
    expect(context.mode).toBe('iommufd');
    context.mapGuestMemory(0n, RAM, 0x4000n);
    expect(kernel.live().dmaMaps).toBe(1);
    const a = VfioDevice.open(FN0, { ...options, context });
    const b = VfioDevice.open(FN1, { ...options, context });
    expect([a.iommuMode, b.iommuMode]).toEqual(['iommufd', 'iommufd']);
    expect(count(kernel.calls, 'IOMMU_IOAS_ALLOC')).toBe(1);
    expect(count(kernel.calls, 'VFIO_DEVICE_BIND_IOMMUFD')).toBe(2);
    expect(count(kernel.calls, 'IOMMU_IOAS_MAP')).toBe(1);
    a.close();
    b.close();
    expect(kernel.live()).toMatchObject({ fds: 1, dmaMaps: 1 });
    context.close();
    expect(kernel.live()).toMatchObject({ fds: 0, dmaMaps: 0 });
  });

  it('a device without a cdev cannot join an iommufd context', () => {
    const { options } = multiSetup(true);
    using context = IommuContext.open(options);
    expect(captureError(() => VfioDevice.open('0000:00:04.0', { ...options, context }))).toMatchObject({ code: 'NO_CDEV' });
  });
});

describe('mapGuestMemory / unmapGuestMemory arguments', () => {
  const bad: [string, unknown[]][] = [
    ['iova not a bigint', [0, RAM, 0x1000n]],
    ['iova negative', [-0x1000n, RAM, 0x1000n]],
    ['iova unaligned', [0x800n, RAM, 0x1000n]],
    ['iova >= 2^64', [1n << 64n, RAM, 0x1000n]],
    ['host address unaligned', [0n, RAM + 1n, 0x1000n]],
    ['host address not a bigint', [0n, Number(RAM), 0x1000n]],
    ['size 0', [0n, RAM, 0n]],
    ['size negative', [0n, RAM, -0x1000n]],
    ['size unaligned', [0n, RAM, 0x1800n]],
    ['size not a bigint', [0n, RAM, 4096]],
    ['iova + size wraps', [(1n << 64n) - 0x1000n, RAM, 0x2000n]],
    ['host + size wraps', [0n, (1n << 64n) - 0x1000n, 0x2000n]],
    ['bad prot', [0n, RAM, 0x1000n, 'write']],
  ];
  it.each(bad)('%s: BAD_ARGUMENT, nothing asked of the kernel', (_name, args) => {
    const { kernel, options } = multiSetup(true);
    using context = IommuContext.open(options);
    const calls = kernel.calls.length;
    const error = captureError(() => (context.mapGuestMemory as (...a: unknown[]) => void)(...args));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(kernel.calls.length).toBe(calls);
  });

  it('overlap, unknown unmaps, kernel refusals: typed errors naming the range, and the records stay true', () => {
    const { kernel, options } = multiSetup(true);
    using context = IommuContext.open(options);
    context.mapGuestMemory(0x10000n, RAM, 0x10000n);
    const overlap = captureError(() => context.mapGuestMemory(0x1f000n, RAM, 0x2000n));
    expect(overlap).toMatchObject({ code: 'DMA_OVERLAP', iova: 0x1f000n, size: 0x2000n });
    expect(captureError(() => context.unmapGuestMemory(0x10000n, 0x1000n))).toMatchObject({ code: 'DMA_NOT_MAPPED' });
    expect(captureError(() => context.unmapGuestMemory(0x30000n, 0x1000n))).toMatchObject({ code: 'DMA_NOT_MAPPED' });
    expect(captureError(() => context.unmapGuestMemory(0x10000n, 0n))).toMatchObject({ code: 'BAD_ARGUMENT' });
    kernel.failWhen((c) => c.name === 'IOMMU_IOAS_MAP', constants.errno.ENOMEM, true);
    const refused = captureError(() => context.mapGuestMemory(0x40000n, RAM, 0x1000n));
    expect(refused).toMatchObject({ code: 'ENOMEM', iova: 0x40000n, ioctl: 'IOMMU_IOAS_MAP' });
    kernel.failWhen((c) => c.name === 'IOMMU_IOAS_UNMAP', constants.errno.EIO, true);
    expect(captureError(() => context.unmapGuestMemory(0x10000n, 0x10000n))).toMatchObject({ code: 'EIO' });
    expect(context.guestMappings).toHaveLength(1); // kept: the unmap can be retried
    context.unmapGuestMemory(0x10000n, 0x10000n);
    expect(kernel.live().dmaMaps).toBe(0);
  });

  it('close unmaps what is still mapped', () => {
    const { kernel, options } = multiSetup(true);
    const context = IommuContext.open(options);
    using device = VfioDevice.open(FN0, { ...options, context });
    context.mapGuestMemory(0n, RAM, 0x1000n);
    context.mapGuestMemory(0x1000n, RAM + 0x1000n, 0x1000n);
    context.close();
    device.close();
    expect(kernel.live()).toMatchObject({ fds: 0, dmaMaps: 0 });
    expect(count(kernel.calls, 'IOMMU_IOAS_UNMAP')).toBe(2);
  });
});
