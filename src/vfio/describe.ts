/**
 * `describeDevice`: everything the planner needs, read from an open VFIO device fd — device info,
 * every region (keyed by index, never by position), irqs, and config space (header, BARs, MSI-X).
 */
import { SIZEOF, VFIO_PCI_REGION, decodeDeviceInfo, decodeIrqInfo, encodeDeviceInfo, encodeIrqInfo } from '../uapi/vfio.js';
import type { Syscalls } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';
import type { DeviceDescription, IrqDescription, RegionDescription } from './description.js';
import { VfioError } from './errors.js';
import { queryRegion } from './region-info.js';
import { decodeBars, decodeConfigHeader, decodeMsix } from './config-space.js';
import { DESCRIPTION_LIMITS } from './description-limits.js';

/** Linux 6.6 grew vfio_device_info by a pad word; asking with the larger size works on older kernels too. */
const DEVICE_INFO_ARGSZ = SIZEOF.vfio_device_info + 4;
const CONFIG_READ_SIZE = 4096;

export function describeDevice(sys: Syscalls, deviceFd: number, bdf: string): DeviceDescription {
  const wrap = <T>(what: string, region: number | undefined, fn: () => T): T => {
    try {
      return fn();
    } catch (error) {
      if (error instanceof SystemError) throw VfioError.fromSystem(error, `${bdf}: ${what}`, { bdf, ...(region !== undefined && { region }) });
      throw error;
    }
  };
  const infoBuffer = encodeDeviceInfo(DEVICE_INFO_ARGSZ);
  wrap('VFIO_DEVICE_GET_INFO', undefined, () => sys.ioctl(deviceFd, 'VFIO_DEVICE_GET_INFO', infoBuffer));
  const info = decodeDeviceInfo(infoBuffer);
  checkCount(bdf, 'num_regions', info.numRegions, DESCRIPTION_LIMITS.regions);
  checkCount(bdf, 'num_irqs', info.numIrqs, DESCRIPTION_LIMITS.irqs);

  const regions: RegionDescription[] = [];
  for (let index = 0; index < info.numRegions; index++) {
    const region = optional(() => wrap(`region ${index} info`, index, () => queryRegion(sys, deviceFd, index)));
    if (region) regions.push(region);
  }
  const irqs: IrqDescription[] = [];
  for (let index = 0; index < info.numIrqs; index++) {
    const irq = optional(() => wrap(`irq ${index} info`, undefined, () => queryIrq(sys, deviceFd, index)));
    if (irq) irqs.push(irq);
  }
  const configRegion = regions.find((r) => r.index === VFIO_PCI_REGION.CONFIG);
  const config = configRegion ? wrap('config space read', VFIO_PCI_REGION.CONFIG, () => readConfig(sys, deviceFd, configRegion)) : undefined;
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
function checkCount(bdf: string, what: string, count: number, limit: number): void {
  if (count > limit) throw new VfioError(`${bdf}: VFIO_DEVICE_GET_INFO reports ${what} ${count} (more than ${limit})`, { code: 'ABSURD_COUNT', bdf, ioctl: 'VFIO_DEVICE_GET_INFO' });
}

/** EINVAL for one index (VGA on a non-VGA device, say) means "no such region": skip it, keep the rest. */
function optional<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    if (error instanceof VfioError && error.code === 'EINVAL') return undefined;
    throw error;
  }
}

function queryIrq(sys: Syscalls, deviceFd: number, index: number): IrqDescription {
  const buffer = encodeIrqInfo(index);
  sys.ioctl(deviceFd, 'VFIO_DEVICE_GET_IRQ_INFO', buffer);
  const irq = decodeIrqInfo(buffer);
  return { index, flags: irq.flags, count: irq.count };
}

function readConfig(sys: Syscalls, deviceFd: number, region: RegionDescription): Buffer {
  const size = Number(region.size < BigInt(CONFIG_READ_SIZE) ? region.size : BigInt(CONFIG_READ_SIZE));
  const buffer = Buffer.alloc(Math.max(size, 256));
  const read = sys.pread(deviceFd, buffer.subarray(0, size), region.offset);
  if (read < 64) throw new VfioError(`config space read returned ${read} bytes`, { code: 'CONFIG_SHORT_READ', region: region.index });
  return buffer;
}
