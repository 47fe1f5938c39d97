import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { VfioDevice, VfioError, bindToVfioPci, descriptionFromJSON, descriptionToJSON, validateBdf } from '../../src/vfio/index.js';
import { qemuNvme } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs, qemuNvmeConfigSpace } from './fixtures.js';
import { captureError } from '../helpers/capture-error.js';

const BDF = '0000:00:01.0';

function setup(noiommu = false, cdev = false) {
  const roots = fakeSysfs(BDF, '7', noiommu, cdev);
  // The device advertises 9 regions but, like a non-VGA device, has no VGA region (EINVAL for index 8).
  const kernel = new FakeKernel({ pageSize: 0x1_0000, device: qemuNvme, config: qemuNvmeConfigSpace(), noiommu, devRoot: roots.devRoot });
  return { kernel, options: { ...roots, syscalls: kernel } };
}

describe('VfioDevice', () => {
  it('validates the BDF strictly', () => {
    for (const bad of ['0000:00:01.0/../../x', '00:01.0', '0000:00:20.0', '0000:00:01.8', '0000:00:1.0', '0000:0G:01.0', 'ABCD:00:01.0']) {
      expect(() => validateBdf(bad)).toThrow(VfioError);
    }
    expect(validateBdf('0000:00:1f.7')).toBe('0000:00:1f.7');
  });

  it("opens through a type1v2 container ('auto' without cdev) and describes QEMU's NVMe", () => {
    const { kernel, options } = setup();
    using device = VfioDevice.open(BDF, options);
    expect(device.iommuMode).toBe('type1v2');
    expect(device.iommuReason).toContain('type1v2');
    expect(device.dma?.kind).toBe('type1v2');
    const d = device.describe();
    expect(d.regions.find((r) => r.index === 0)).toEqual({
      index: 0,
      flags: 0xf,
      size: 0x4000n,
      offset: 0n,
      capabilities: [{ kind: 'msix-mappable', id: 3, version: 1 }],
    });
    // index 8 (VGA) answered EINVAL and is simply absent; the others keep their indices.
    expect(d.regions.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(d.config).toEqual({
      vendorId: 0x1b36,
      deviceId: 0x0010,
      classCode: 0x010802,
      headerType: 0,
      capabilities: [{ id: 0x11, offset: 0x40 }, { id: 0x01, offset: 0x80 }],
    });
    expect(d.bars[0]).toEqual({ index: 0, kind: 'memory', is64Bit: true, prefetchable: false, address: 0x80_0000_0000n });
    expect(d.bars[1]).toMatchObject({ index: 1, kind: 'upper-half' });
    expect(d.msix).toEqual({
      capOffset: 0x40,
      vectors: 65,
      table: { bir: 0, offset: 0x2000n, size: 0x410n },
      pba: { bir: 0, offset: 0x3000n, size: 0x10n },
    });
    expect(d.irqs.find((i) => i.index === 2)?.count).toBe(65);
    // It used the two-call argsz protocol for the region with capabilities.
    expect(kernel.calls.filter((c) => c.name === 'VFIO_DEVICE_GET_REGION_INFO').length).toBe(9 + 1);
    expect(descriptionFromJSON(JSON.parse(JSON.stringify(descriptionToJSON(d))))).toEqual(d);
  });

  it("prefers iommufd + cdev when the kernel has them ('auto'), binds, attaches an IOAS and DMA-maps through it", () => {
    const { kernel, options } = setup(false, true);
    using device = VfioDevice.open(BDF, options);
    expect(device.iommuMode).toBe('iommufd');
    // The (private) IOMMU context first: /dev/iommu and its IOAS; then the cdev, bound and attached to that IOAS.
    expect(kernel.calls.map((c) => c.name)).toEqual([
      'open',
      'IOMMU_IOAS_ALLOC',
      'open',
      'VFIO_DEVICE_BIND_IOMMUFD',
      'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
      'VFIO_DEVICE_FEATURE',
    ]);
    expect(device.describe().msix?.vectors).toBe(65);
    device.dma!.mapDma(0x1_0000n, 0x7f00_0000_0000n, 0x1_0000n, 'read-write');
    expect(kernel.live().dmaMaps).toBe(1);
    device.dma!.unmapDma(0x1_0000n, 0x1_0000n);
    expect(kernel.live().dmaMaps).toBe(0);
  });

  it('every syscall of the iommufd open failing in turn: a typed error and no fd left open', () => {
    for (let i = 0; i < 6; i++) {
      const { kernel, options } = setup(false, true);
      kernel.failAt(i, constants.errno.EIO);
      expect(() => VfioDevice.open(BDF, options)).toThrow(expect.objectContaining({ code: 'EIO' }) as Error);
      expect(kernel.live().fds).toBe(0);
    }
  });

  it('Linux 6.1: vfio-dev/vfio0 in sysfs but no cdev node -> the legacy container path', () => {
    const { options } = setup(false, false);
    using device = VfioDevice.open(BDF, options);
    expect(device.iommuMode).toBe('type1v2');
  });

  it('opens a no-IOMMU group with the noiommu container type and no DMA mapper', () => {
    const { options } = setup(true);
    using device = VfioDevice.open(BDF, { ...options, iommu: 'noiommu' });
    expect(device.iommuMode).toBe('noiommu');
    expect(device.dma).toBeUndefined();
  });

  it('refuses impossible modes with typed errors', () => {
    const { options } = setup(true);
    expect(() => VfioDevice.open(BDF, { ...options, iommu: 'type1' })).toThrow(
      expect.objectContaining({ code: 'MODE_UNAVAILABLE' }) as Error
    );
    expect(() => VfioDevice.open(BDF, { ...options, iommu: 'iommufd' })).toThrow(expect.objectContaining({ code: 'NO_CDEV' }) as Error);
    expect(() => VfioDevice.open('0000:00:02.0', options)).toThrow(expect.objectContaining({ code: 'NO_IOMMU_GROUP' }) as Error);
  });

  it('every syscall of open() failing in turn: a typed error and no fd left open', () => {
    const probe = setup();
    VfioDevice.open(BDF, probe.options).close();
    const openCalls = probe.kernel.calls.length - probe.kernel.calls.filter((c) => c.name === 'close').length;
    expect(openCalls).toBeGreaterThanOrEqual(8);
    for (let i = 0; i < openCalls; i++) {
      const { kernel, options } = setup();
      kernel.failAt(i, constants.errno.EIO);
      const error = captureError(() => VfioDevice.open(BDF, options));
      expect(error, `call ${i} (${kernel.calls[i]?.name})`).toBeInstanceOf(VfioError);
      expect((error as VfioError).code).toBe('EIO');
      expect(kernel.live().fds, `fds left after failing call ${i} (${kernel.calls[i]?.name})`).toBe(0);
    }
  });

  it('describe() wraps a failing ioctl with the device and region', () => {
    const { kernel, options } = setup();
    using device = VfioDevice.open(BDF, options);
    kernel.failWhen((c) => c.name === 'VFIO_DEVICE_GET_REGION_INFO', constants.errno.EIO, true);
    const error = captureError(() => device.describe());
    expect(error).toMatchObject({ code: 'EIO', bdf: BDF, region: 0, ioctl: 'VFIO_DEVICE_GET_REGION_INFO' });
    device.close();
    expect(kernel.live().fds).toBe(0);
  });

  it('DMA-maps through the container and rejects overlap like type1', () => {
    const { kernel, options } = setup();
    using device = VfioDevice.open(BDF, options);
    device.dma!.mapDma(0x1_0000n, 0x7f00_0000_0000n, 0x1_0000n, 'read-write');
    expect(kernel.live().dmaMaps).toBe(1);
    expect(captureError(() => device.dma!.mapDma(0x1_0000n, 0x7f00_0000_0000n, 0x1_0000n, 'read'))).toMatchObject({ code: 'EEXIST' });
    device.dma!.unmapDma(0x1_0000n, 0x1_0000n);
    expect(kernel.live().dmaMaps).toBe(0);
  });
});

describe('bindToVfioPci', () => {
  it('writes driver_override, unbinds the current driver and asks for a probe', () => {
    const { sysfsRoot } = fakeSysfs(BDF, '7');
    const dir = path.join(sysfsRoot, 'bus', 'pci', 'devices', BDF);
    mkdirSync(path.join(dir, 'driver'));
    writeFileSync(path.join(dir, 'driver', 'unbind'), '');
    bindToVfioPci(BDF, { sysfsRoot });
    expect(readFileSync(path.join(dir, 'driver_override'), 'utf8')).toBe('vfio-pci');
    expect(readFileSync(path.join(dir, 'driver', 'unbind'), 'utf8')).toBe(BDF);
    expect(readFileSync(path.join(sysfsRoot, 'bus', 'pci', 'drivers_probe'), 'utf8')).toBe(BDF);
  });

  it('a device that does not exist is a typed error, and a bad BDF never reaches the file system', () => {
    const { sysfsRoot } = fakeSysfs(BDF, '7');
    expect(() => bindToVfioPci('0000:00:1f.7', { sysfsRoot })).toThrow(expect.objectContaining({ code: 'SYSFS_WRITE_FAILED' }) as Error);
    expect(() => bindToVfioPci('../../../etc', { sysfsRoot })).toThrow(expect.objectContaining({ code: 'BAD_BDF' }) as Error);
  });
});
