/** Test fixtures: QEMU NVMe config space bytes and a fake sysfs/dev tree for VfioDevice.open. */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { makeTempDir } from '../helpers/temp-dir.js';
import path from 'node:path';

/** Config space of QEMU's NVMe (1b36:0010): 64-bit BAR0 at 0x80_0000_0000, MSI-X (65 vectors) at 0x40. */
export function qemuNvmeConfigSpace(): Buffer {
  const c = Buffer.alloc(4096);
  c.writeUInt16LE(0x1b36, 0x00);
  c.writeUInt16LE(0x0010, 0x02);
  c.writeUInt16LE(0x0010, 0x06); // status: capability list
  c.writeUInt32LE((0x010802 << 8) | 0x02, 0x08); // class 01:08:02, revision 2
  c.writeUInt8(0, 0x0e);
  c.writeUInt32LE(0x0000_0004, 0x10); // BAR0: memory, 64-bit, not prefetchable
  c.writeUInt32LE(0x0000_0080, 0x14); // BAR1: upper half -> 0x80_0000_0000
  c.writeUInt8(0x40, 0x34);
  c.writeUInt8(0x11, 0x40); // MSI-X
  c.writeUInt8(0x80, 0x41);
  c.writeUInt16LE(64, 0x42); // table size 65
  c.writeUInt32LE(0x2000 | 0, 0x44); // table BIR 0 offset 0x2000
  c.writeUInt32LE(0x3000 | 0, 0x48); // PBA BIR 0 offset 0x3000
  c.writeUInt8(0x01, 0x80); // power management
  c.writeUInt8(0x80, 0x81); // a loop back to itself: the walk must stop
  return c;
}

/** A throwaway /sys + /dev tree where `bdf` sits in IOMMU group `group` (or a no-IOMMU group). */
export function fakeSysfs(bdf: string, group: string, noiommu = false, cdev = false): { sysfsRoot: string; devRoot: string } {
  const root = makeTempDir('vfio-bars-sysfs-');
  const sysfsRoot = path.join(root, 'sys');
  const devRoot = path.join(root, 'dev');
  const deviceDir = path.join(sysfsRoot, 'bus', 'pci', 'devices', bdf);
  mkdirSync(deviceDir, { recursive: true });
  mkdirSync(path.join(sysfsRoot, 'kernel', 'iommu_groups', group), { recursive: true });
  symlinkSync(path.join(sysfsRoot, 'kernel', 'iommu_groups', group), path.join(deviceDir, 'iommu_group'));
  mkdirSync(path.join(devRoot, 'vfio'), { recursive: true });
  writeFileSync(path.join(devRoot, 'vfio', noiommu ? `noiommu-${group}` : group), '');
  writeFileSync(path.join(devRoot, 'vfio', 'vfio'), '');
  // Linux 6.1+ lists vfio-dev/vfioN in sysfs; only 6.6+ with iommufd also has the device nodes.
  mkdirSync(path.join(deviceDir, 'vfio-dev', 'vfio0'), { recursive: true });
  if (cdev) {
    mkdirSync(path.join(devRoot, 'vfio', 'devices'), { recursive: true });
    writeFileSync(path.join(devRoot, 'vfio', 'devices', 'vfio0'), '');
    writeFileSync(path.join(devRoot, 'iommu'), '');
  }
  return { sysfsRoot, devRoot };
}
