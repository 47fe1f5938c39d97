/**
 * sysfs lookups for a PCI device: its IOMMU group, its VFIO cdev, and binding it to vfio-pci. These are
 * text files and symlinks, read with node:fs; the BDF is validated before it is ever joined to a path.
 */
import { existsSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { validateBdf } from './bdf.js';
import { VfioError } from './errors.js';

export interface SysfsOptions {
  /** Default `/sys`. */
  sysfsRoot?: string;
  /** Default `/dev`. */
  devRoot?: string;
}

function deviceDir(bdf: string, sysfsRoot: string): string {
  return path.join(sysfsRoot, 'bus', 'pci', 'devices', validateBdf(bdf));
}

/** The IOMMU group number of `bdf`, from the `iommu_group` symlink. */
export function iommuGroupOf(bdf: string, options: SysfsOptions = {}): string {
  const link = path.join(deviceDir(bdf, options.sysfsRoot ?? '/sys'), 'iommu_group');
  let target: string;
  try {
    target = readlinkSync(link);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'ENOENT';
    throw new VfioError(
      `${bdf}: no IOMMU group (${link}: ${code}); is the device bound to vfio-pci, and is an IOMMU or noiommu mode enabled?`,
      { code: 'NO_IOMMU_GROUP', bdf },
    );
  }
  const group = path.basename(target);
  if (!/^[0-9]+$/.test(group)) throw new VfioError(`${bdf}: unexpected iommu_group link ${target}`, { code: 'NO_IOMMU_GROUP', bdf });
  return group;
}

/** `/dev/vfio/devices/vfioN` when the kernel exposes the VFIO cdev for this device and /dev/iommu exists (Linux 6.6+). */
export function cdevOf(bdf: string, options: SysfsOptions = {}): string | undefined {
  const dir = path.join(deviceDir(bdf, options.sysfsRoot ?? '/sys'), 'vfio-dev');
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return undefined;
  }
  const name = entries.find((e) => /^vfio[0-9]+$/.test(e));
  if (!name) return undefined;
  // Linux 6.1-6.5 already list vfio-dev/vfioN in sysfs but have no cdev node (CONFIG_VFIO_DEVICE_CDEV
  // arrived in 6.6), and the cdev path needs iommufd too: only report what can actually be opened.
  const devRoot = options.devRoot ?? '/dev';
  const node = path.join(devRoot, 'vfio', 'devices', name);
  return existsSync(node) && existsSync(path.join(devRoot, 'iommu')) ? node : undefined;
}

/** Group device node: `/dev/vfio/N` (IOMMU) or `/dev/vfio/noiommu-N` (no-IOMMU mode). */
export function groupNodeOf(group: string, options: SysfsOptions = {}): { path: string; noiommu: boolean } | undefined {
  const dir = path.join(options.devRoot ?? '/dev', 'vfio');
  const iommu = path.join(dir, group);
  if (existsSync(iommu)) return { path: iommu, noiommu: false };
  const noiommu = path.join(dir, `noiommu-${group}`);
  if (existsSync(noiommu)) return { path: noiommu, noiommu: true };
  return undefined;
}

/**
 * Binds `bdf` to vfio-pci: driver_override, unbind from the current driver, drivers_probe.
 * Needs root (CAP_SYS_ADMIN on sysfs); says so clearly instead of failing with a bare EACCES.
 */
export function bindToVfioPci(bdf: string, options: SysfsOptions = {}): void {
  const sysfs = options.sysfsRoot ?? '/sys';
  const dir = deviceDir(bdf, sysfs);
  const write = (file: string, value: string): void => {
    try {
      writeFileSync(file, value);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'EACCES' || code === 'EPERM') {
        throw new VfioError(`${bdf}: writing ${file} needs root (${code})`, { code: 'NOT_ROOT', bdf });
      }
      throw new VfioError(`${bdf}: writing ${file} failed: ${code}`, { code: 'SYSFS_WRITE_FAILED', bdf });
    }
  };
  write(path.join(dir, 'driver_override'), 'vfio-pci');
  if (existsSync(path.join(dir, 'driver'))) write(path.join(dir, 'driver', 'unbind'), bdf);
  write(path.join(sysfs, 'bus', 'pci', 'drivers_probe'), bdf);
}

/**
 * Which kernel driver holds `bdf`, from its sysfs `driver` link: `'vfio-pci'`, `'nvme'`, ... `undefined` when
 * no driver is bound; `null` when sysfs has no such device. Lets a tool say "bound to nvme, not vfio-pci"
 * instead of a bare missing IOMMU group.
 * @throws {VfioError} `BAD_BDF` for a malformed address (validated before it touches a path).
 * @example
 * ```ts
 * if (driverOf('0000:01:00.0') !== 'vfio-pci') bindToVfioPci('0000:01:00.0');
 * ```
 */
export function driverOf(bdf: string, options: SysfsOptions = {}): string | undefined | null {
  const dir = deviceDir(bdf, options.sysfsRoot ?? '/sys');
  if (!existsSync(dir)) return null;
  try {
    return path.basename(readlinkSync(path.join(dir, 'driver')));
  } catch {
    return undefined;
  }
}
