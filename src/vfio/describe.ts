/* Reading a DeviceDescription from a device fd (documented on describeDevice). */
import {
  SIZEOF, VFIO_PCI_NUM_REGIONS, VFIO_PCI_REGION, decodeDeviceInfo, decodeIrqInfo, encodeDeviceInfo, encodeIrqInfo,
} from '../uapi/vfio.js';
import type { Syscalls } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';
import type { DeviceDescription, IrqDescription, RegionDescription } from './description.js';
import { VfioError } from './errors.js';
import { queryRegion } from './region-info.js';
import { decodeBars, decodeConfigHeader, decodeMsix } from './config-space.js';

/** Linux 6.6 grew vfio_device_info by a pad word; asking with the larger size works on older kernels too. */
const DEVICE_INFO_ARGSZ = SIZEOF.vfio_device_info + 4;
const CONFIG_READ_SIZE = 4096;

/**
 * The most regions `describe()` walks: vfio-pci's 9 fixed ones plus room for device-specific regions (IGD
 * OpRegion, NVLink, migration: a handful in practice). A kernel reporting more is broken or hostile: typed
 * error `TOO_MANY_REGIONS` instead of 2^32 ioctls.
 */
export const MAX_DEVICE_REGIONS = VFIO_PCI_NUM_REGIONS + 32;
/** The most irq indices walked: vfio-pci has 5 (INTx, MSI, MSI-X, ERR, REQ). More is `TOO_MANY_IRQS`. */
export const MAX_DEVICE_IRQS = 16;
/** PCI allows at most 2048 MSI-X vectors (32 MSI, 1 INTx); a larger `count` is `IRQ_COUNT_ABSURD`. */
export const MAX_IRQ_VECTORS = 2048;

/**
 * Reads everything the planner needs from an open VFIO device fd: device info, every region (keyed by index,
 * never by position, with its capability chain), irqs, and config space (header, BARs, MSI-X). What
 * `VfioDevice.describe()` calls; exported for VMMs that open device fds themselves.
 *
 * @param sys the kernel interface (`realSyscalls()`).
 * @param deviceFd a VFIO device fd (from VFIO_GROUP_GET_DEVICE_FD or a bound /dev/vfio/devices/vfioN).
 * @param bdf the PCI address, for messages and `description.bdf`.
 * @throws VfioError with the failing ioctl's errno name, or a code for data it cannot trust: `TOO_MANY_REGIONS`,
 *   `TOO_MANY_IRQS`, `IRQ_COUNT_ABSURD`, `ARGSZ_UNSTABLE`, `ARGSZ_TOO_LARGE`, `CONFIG_SHORT_READ`, `MSIX_BAD_BIR`,
 *   `CAP_*` and `SPARSE_*` (see parseRegionCapabilities).
 * @example
 * const description = describeDevice(realSyscalls(), vmmDeviceFd, '0000:01:00.0');
 */
export function describeDevice(sys: Syscalls, deviceFd: number, bdf: string): DeviceDescription {
  const wrap = <T>(what: string, region: number | undefined, fn: () => T): T => {
    try {
      return fn();
    } catch (error) {
      if (error instanceof SystemError) {
        throw VfioError.fromSystem(error, `${bdf}: ${what}`, { bdf, ...(region !== undefined && { region }) });
      }
      throw withDevice(error, bdf);
    }
  };
  const infoBuffer = encodeDeviceInfo(DEVICE_INFO_ARGSZ);
  wrap('VFIO_DEVICE_GET_INFO', undefined, () => sys.ioctl(deviceFd, 'VFIO_DEVICE_GET_INFO', infoBuffer));
  const info = decodeDeviceInfo(infoBuffer);
  checkCounts(info.numRegions, info.numIrqs, bdf);

  const regions: RegionDescription[] = [];
  for (let index = 0; index < info.numRegions; index++) {
    const region = optional(() => wrap(`region ${index} info`, index, () => queryRegion(sys, deviceFd, index)));
    if (region) regions.push(region);
  }
  const irqs: IrqDescription[] = [];
  for (let index = 0; index < info.numIrqs; index++) {
    const irq = optional(() => wrap(`irq ${index} info`, undefined, () => queryIrq(sys, deviceFd, index, bdf)));
    if (irq) irqs.push(irq);
  }
  const configRegion = regions.find((r) => r.index === VFIO_PCI_REGION.CONFIG);
  const config = configRegion
    ? wrap('config space read', VFIO_PCI_REGION.CONFIG, () => readConfig(sys, deviceFd, configRegion))
    : undefined;
  const header = config ? decodeConfigHeader(config) : undefined;
  const msix = config && header ? decodeMsix(config, header.capabilities) : undefined;
  return {
    bdf,
    flags: info.flags,
    numRegions: info.numRegions,
    numIrqs: info.numIrqs,
    regions,
    irqs,
    ...(header && { config: header }),
    bars: config && header ? decodeBars(config, header.headerType) : [],
    ...(msix && { msix }),
  };
}

/** A count the kernel reports bounds a loop of ioctls: an absurd one (a buggy or hostile driver) is refused. */
/** EINVAL for one index (VGA on a non-VGA device, say) means "no such region": skip it, keep the rest. */
function optional<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    if (error instanceof VfioError && error.code === 'EINVAL') return undefined;
    throw error;
  }
}

/** A VfioError raised below describe() (region-info, cap chain) gets the device named, like the errno ones. */
function withDevice(error: unknown, bdf: string): unknown {
  if (!(error instanceof VfioError) || error.bdf !== undefined) return error;
  const { code, region, group, errno, ioctl, iova, size } = error;
  const details = { code, bdf, region, group, errno, ioctl, iova, size };
  return new VfioError(`${bdf}: ${error.message}`, details, { cause: error });
}

function checkCounts(numRegions: number, numIrqs: number, bdf: string): void {
  if (numRegions > MAX_DEVICE_REGIONS) {
    const message = `${bdf}: kernel reports ${numRegions} regions (more than ${MAX_DEVICE_REGIONS}): refusing to walk them`;
    throw new VfioError(message, { code: 'TOO_MANY_REGIONS', bdf, ioctl: 'VFIO_DEVICE_GET_INFO' });
  }
  if (numIrqs > MAX_DEVICE_IRQS) {
    const message = `${bdf}: kernel reports ${numIrqs} irq indices (more than ${MAX_DEVICE_IRQS}): refusing to walk them`;
    throw new VfioError(message, { code: 'TOO_MANY_IRQS', bdf, ioctl: 'VFIO_DEVICE_GET_INFO' });
  }
}

function queryIrq(sys: Syscalls, deviceFd: number, index: number, bdf: string): IrqDescription {
  const buffer = encodeIrqInfo(index);
  sys.ioctl(deviceFd, 'VFIO_DEVICE_GET_IRQ_INFO', buffer);
  const irq = decodeIrqInfo(buffer);
  if (irq.count > MAX_IRQ_VECTORS) {
    const message = `${bdf}: irq index ${index} reports ${irq.count} vectors (PCI allows at most ${MAX_IRQ_VECTORS})`;
    throw new VfioError(message, { code: 'IRQ_COUNT_ABSURD', bdf });
  }
  return { index, flags: irq.flags, count: irq.count };
}

function readConfig(sys: Syscalls, deviceFd: number, region: RegionDescription): Buffer {
  const size = Number(region.size < BigInt(CONFIG_READ_SIZE) ? region.size : BigInt(CONFIG_READ_SIZE));
  const buffer = Buffer.alloc(Math.max(size, 256));
  const read = sys.pread(deviceFd, buffer.subarray(0, size), region.offset);
  if (read < 64) throw new VfioError(`config space read returned ${read} bytes`, { code: 'CONFIG_SHORT_READ', region: region.index });
  return buffer;
}
