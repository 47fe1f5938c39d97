/**
 * The iommufd + cdev path as Linux 6.12 answers it (learnt in the emulated tier, test/emu): what the fake
 * kernel must refuse, and how the library reports that BARs cannot be DMA-mapped under iommufd without
 * dma-buf export (Linux 6.19+).
 */
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { VfioDevice, VfioError } from '../../src/vfio/index.js';
import { qemuNvme } from '../../src/cli/profiles.js';
import { encodeAttachIommufdPt, encodeBindIommufd, encodeDeviceFeatureProbe, encodeRegionInfo, VFIO_DEVICE_FEATURE_ID } from '../../src/uapi/index.js';
import { PROT } from '../../src/sys/syscalls.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs, qemuNvmeConfigSpace } from './fixtures.js';
import { captureError } from '../helpers/capture-error.js';

const BDF = '0000:00:01.0';

function setup(dmaBufExport = false) {
  const roots = fakeSysfs(BDF, '7', false, true);
  const kernel = new FakeKernel({ pageSize: 0x1_0000, device: qemuNvme, config: qemuNvmeConfigSpace(), devRoot: roots.devRoot, dmaBufExport });
  return { kernel, roots, options: { ...roots, syscalls: kernel } };
}

describe('iommufd + VFIO cdev (Linux 6.12 semantics)', () => {
  it("'auto' picks iommufd and says why; 'iommufd' says it was requested", () => {
    const { options } = setup();
    using auto = VfioDevice.open(BDF, options);
    expect([auto.iommuMode, auto.iommuReason]).toEqual(['iommufd', 'iommufd (auto: VFIO cdev and /dev/iommu present)']);
    auto.close();
    using requested = VfioDevice.open(BDF, { ...options, iommu: 'iommufd' });
    expect([requested.iommuMode, requested.iommuReason]).toEqual(['iommufd', 'iommufd (requested)']);
  });

  it('without dma-buf export (6.12): the DMA mapper says BARs cannot be DMA-mapped, with the code and why', () => {
    const { options } = setup();
    using device = VfioDevice.open(BDF, options);
    expect(device.dma?.mmioDmaUnsupported?.code).toBe('IOMMUFD_NO_DMABUF_EXPORT');
    expect(device.dma?.mmioDmaUnsupported?.message).toContain('VFIO_DEVICE_FEATURE_DMA_BUF probe: ENOTTY');
    expect(device.dma?.mmioDmaUnsupported?.message).toContain('Linux 6.19+');
  });

  it('with dma-buf export (6.19+): still unsupported by the library, and it says that instead', () => {
    const { options } = setup(true);
    using device = VfioDevice.open(BDF, options);
    expect(device.dma?.mmioDmaUnsupported?.code).toBe('IOMMUFD_DMABUF_NOT_USED');
    expect(device.dma?.mmioDmaUnsupported?.message).toContain('IOMMU_IOAS_MAP_FILE');
  });

  it('a type1 container DMA-maps BARs (follow_pfn): no mmioDmaUnsupported there', () => {
    const roots = fakeSysfs(BDF, '7', false, false);
    const kernel = new FakeKernel({ pageSize: 0x1_0000, device: qemuNvme, config: qemuNvmeConfigSpace(), devRoot: roots.devRoot });
    using device = VfioDevice.open(BDF, { ...roots, syscalls: kernel });
    expect(device.dma?.kind).toBe('type1v2');
    expect(device.dma?.mmioDmaUnsupported).toBeUndefined();
  });

  it('a probe failing for another reason than "unsupported" fails the open, typed, with nothing left open', () => {
    const { kernel, options } = setup();
    kernel.failWhen((c) => c.name === 'VFIO_DEVICE_FEATURE', constants.errno.EIO);
    const error = captureError(() => VfioDevice.open(BDF, options));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'EIO', ioctl: 'VFIO_DEVICE_FEATURE', bdf: BDF });
    expect(kernel.live().fds).toBe(0);
  });

  it('IOMMU_IOAS_MAP of a BAR mmap is EFAULT (VM_PFNMAP), RAM maps fine', () => {
    const { kernel, options } = setup();
    using device = VfioDevice.open(BDF, options);
    const bar = kernel.mmap(device.fd, 0n, 0x1_0000n, PROT.READ | PROT.WRITE);
    expect(captureError(() => device.dma!.mapDma(0x40_0000_0000n, bar.address, 0x1_0000n, 'read-write'))).toMatchObject({ code: 'EFAULT', ioctl: 'IOMMU_IOAS_MAP' });
    const ramFd = kernel.memfdCreate('ram', 0);
    kernel.ftruncate(ramFd, 0x1_0000n);
    const ram = kernel.mmap(ramFd, 0n, 0x1_0000n, PROT.READ | PROT.WRITE);
    device.dma!.mapDma(0x0n, ram.address, 0x1_0000n, 'read-write');
    expect(kernel.live().dmaMaps).toBe(1);
    device.dma!.unmapDma(0x0n, 0x1_0000n);
    kernel.munmap(ram);
    kernel.munmap(bar);
    kernel.close(ramFd);
  });
});

describe('fake kernel: the cdev fd before and at BIND_IOMMUFD', () => {
  function openCdev() {
    const { kernel, roots } = setup();
    const deviceFd = kernel.open(`${roots.devRoot}/vfio/devices/vfio0`, 2);
    const iommuFd = kernel.open(`${roots.devRoot}/iommu`, 2);
    return { kernel, deviceFd, iommuFd };
  }

  it('every ioctl, pread and mmap but BIND is EINVAL until the bind', () => {
    const { kernel, deviceFd } = openCdev();
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_GET_REGION_INFO', encodeRegionInfo(0)))).toMatchObject({ code: 'EINVAL' });
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', encodeAttachIommufdPt(1)))).toMatchObject({ code: 'EINVAL' });
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_FEATURE', encodeDeviceFeatureProbe(VFIO_DEVICE_FEATURE_ID.DMA_BUF, 'get')))).toMatchObject({ code: 'EINVAL' });
    expect(captureError(() => kernel.pread(deviceFd, Buffer.alloc(4), 7n << 40n))).toMatchObject({ code: 'EINVAL' });
    expect(captureError(() => kernel.mmap(deviceFd, 0n, 0x1_0000n, PROT.READ))).toMatchObject({ code: 'EINVAL' });
  });

  it('BIND: non-zero flags, a negative fd, a non-iommufd fd, and a second bind are refused', () => {
    const { kernel, deviceFd, iommuFd } = openCdev();
    const flagged = encodeBindIommufd(iommuFd);
    flagged.writeUInt32LE(1, 4);
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', flagged))).toMatchObject({ code: 'EINVAL' });
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(-1)))).toMatchObject({ code: 'EINVAL' });
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(deviceFd)))).toMatchObject({ code: 'EBADF' });
    kernel.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(iommuFd));
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(iommuFd)))).toMatchObject({ code: 'EINVAL' });
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', encodeAttachIommufdPt(99)))).toMatchObject({ code: 'ENOENT' });
  });

  it('VFIO_DEVICE_FEATURE after the bind: DMA_BUF unknown on 6.12 (ENOTTY), a bad header EINVAL', () => {
    const { kernel, deviceFd, iommuFd } = openCdev();
    kernel.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(iommuFd));
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_FEATURE', encodeDeviceFeatureProbe(VFIO_DEVICE_FEATURE_ID.DMA_BUF, 'get')))).toMatchObject({ code: 'ENOTTY' });
    const unknownFlag = encodeDeviceFeatureProbe(VFIO_DEVICE_FEATURE_ID.DMA_BUF, 'get');
    unknownFlag.writeUInt32LE(unknownFlag.readUInt32LE(4) | (1 << 20), 4);
    expect(captureError(() => kernel.ioctl(deviceFd, 'VFIO_DEVICE_FEATURE', unknownFlag))).toMatchObject({ code: 'EINVAL' });
    expect(() => encodeDeviceFeatureProbe(0x1_0000, 'get')).toThrow(RangeError);
  });
});
