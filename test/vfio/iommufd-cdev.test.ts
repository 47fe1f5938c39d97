/**
 * The iommufd + cdev path as Linux 6.12 answers it (learnt in the emulated tier, test/emu): what the fake
 * kernel must refuse, and how the library reports that BARs cannot be DMA-mapped under iommufd without
 * dma-buf export (Linux 6.19+).
 */
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { VfioDevice, VfioError } from '../../src/vfio/index.js';
import { qemuNvme } from '../helpers/profiles.js';
import * as uapi from '../../src/uapi/index.js';
import { encodeDeviceFeatureProbe } from '../../src/uapi/index.js';
import { PROT } from '../../src/sys/syscalls.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { LINUX_612_CDEV_ANSWERS } from '../fake/iommufd-rules.js';
import { probeCdev } from '../emu/guest/cdev-probe.mjs';
import { fakeSysfs, qemuNvmeConfigSpace } from './fixtures.js';
import { captureError } from '../helpers/capture-error.js';

const BDF = '0000:00:01.0';

function setup(dmaBufExport = false) {
  const roots = fakeSysfs(BDF, '7', false, true);
  const kernel = new FakeKernel({
    pageSize: 0x1_0000,
    device: qemuNvme,
    config: qemuNvmeConfigSpace(),
    devRoot: roots.devRoot,
    dmaBufExport,
  });
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
    expect(
      captureError(() => device.dma!.mapDma(0x40_0000_0000n, bar.address, 0x1_0000n, 'read-write'))
    ).toMatchObject({ code: 'EFAULT', ioctl: 'IOMMU_IOAS_MAP' });
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

describe('fake kernel vs Linux 6.12: the cdev bind protocol', () => {
  it('answers the shared probe (guest/cdev-probe.mjs) exactly as the real 6.12 kernel did', () => {
    const { kernel, roots } = setup();
    const answers = probeCdev(kernel, uapi, { cdev: `${roots.devRoot}/vfio/devices/vfio0`, iommu: `${roots.devRoot}/iommu` });
    expect(answers).toEqual(LINUX_612_CDEV_ANSWERS);
    expect(kernel.live().fds).toBe(0);
  });

  it('mmap of an unbound cdev fd is EINVAL too; a feature index beyond 16 bits is refused before encoding', () => {
    const { kernel, roots } = setup();
    const fd = kernel.open(`${roots.devRoot}/vfio/devices/vfio0`, 2);
    expect(captureError(() => kernel.mmap(fd, 0n, 0x1_0000n, PROT.READ))).toMatchObject({ code: 'EINVAL' });
    expect(() => encodeDeviceFeatureProbe(0x1_0000, 'get')).toThrow(RangeError);
    kernel.close(fd);
  });
});
