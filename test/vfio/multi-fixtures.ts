/** A fake kernel plus /sys and /dev trees for several devices in several IOMMU groups (shared-context tests). */
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { qemuNvme } from '../helpers/profiles.js';
import { FakeKernel, type FakeKernelOptions } from '../fake/fake-kernel.js';
import type { FakeGroup } from '../fake/fake-vfio-groups.js';
import { qemuNvmeConfigSpace } from './fixtures.js';

/** Two functions of group 7 (00:01.0, 00:01.1) and one device in group 8 (00:02.0); cdevs vfio0..vfio2. */
export const TOPOLOGY: readonly FakeGroup[] = [
  { id: '7', devices: [{ bdf: '0000:00:01.0', cdev: 'vfio0' }, { bdf: '0000:00:01.1', cdev: 'vfio1' }] },
  { id: '8', devices: [{ bdf: '0000:00:02.0', cdev: 'vfio2' }] },
  { id: '9', noiommu: true, devices: [{ bdf: '0000:00:03.0', cdev: 'vfio3' }] },
];

export function multiSysfs(groups: readonly FakeGroup[], cdev: boolean): { sysfsRoot: string; devRoot: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'vfio-bars-multi-'));
  const sysfsRoot = path.join(root, 'sys');
  const devRoot = path.join(root, 'dev');
  mkdirSync(path.join(devRoot, 'vfio'), { recursive: true });
  writeFileSync(path.join(devRoot, 'vfio', 'vfio'), '');
  if (cdev) {
    mkdirSync(path.join(devRoot, 'vfio', 'devices'), { recursive: true });
    writeFileSync(path.join(devRoot, 'iommu'), '');
  }
  for (const group of groups) {
    const groupDir = path.join(sysfsRoot, 'kernel', 'iommu_groups', group.id);
    mkdirSync(groupDir, { recursive: true });
    writeFileSync(path.join(devRoot, 'vfio', `${group.noiommu ? 'noiommu-' : ''}${group.id}`), '');
    for (const device of group.devices) {
      const deviceDir = path.join(sysfsRoot, 'bus', 'pci', 'devices', device.bdf);
      mkdirSync(path.join(deviceDir, 'vfio-dev', device.cdev ?? 'vfio99'), { recursive: true });
      symlinkSync(groupDir, path.join(deviceDir, 'iommu_group'));
      if (cdev && device.cdev) writeFileSync(path.join(devRoot, 'vfio', 'devices', device.cdev), '');
    }
  }
  return { sysfsRoot, devRoot };
}

/** Every device of the topology answers like QEMU's NVMe (the fake serves one description). */
export function multiSetup(cdev = false, extra: FakeKernelOptions = {}) {
  const roots = multiSysfs(TOPOLOGY, cdev);
  const config = qemuNvmeConfigSpace();
  const kernel = new FakeKernel({ pageSize: 0x1000, device: qemuNvme, config, groups: TOPOLOGY, devRoot: roots.devRoot, ...extra });
  return { kernel, options: { ...roots, syscalls: kernel } };
}
