/**
 * VFIO_DEVICE_GET_REGION_INFO with the argsz protocol: ask with 32 bytes; when the kernel has
 * capabilities that do not fit it answers 0 with CAPS set, a larger argsz and cap_offset 0, and we ask
 * again with that size — until argsz stops growing (bounded, so a lying driver cannot loop us).
 */
import { SIZEOF, VFIO_REGION_FLAGS, decodeRegionInfo, encodeRegionInfo, type VfioRegionInfo } from '../uapi/vfio.js';
import type { Syscalls } from '../sys/syscalls.js';
import { hex } from '../errors.js';
import type { RegionDescription } from './description.js';
import { VfioError } from './errors.js';
import { parseRegionCapabilities } from './region-caps.js';

const MAX_ATTEMPTS = 4;
const MAX_ARGSZ = 64 * 1024;

export function queryRegion(sys: Syscalls, deviceFd: number, index: number): RegionDescription {
  let buffer = encodeRegionInfo(index, SIZEOF.vfio_region_info);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    sys.ioctl(deviceFd, 'VFIO_DEVICE_GET_REGION_INFO', buffer);
    const info = decodeRegionInfo(buffer);
    const hasCaps = (info.flags & VFIO_REGION_FLAGS.CAPS) !== 0;
    if (!hasCaps || info.argsz <= buffer.length) return toDescription(index, info, buffer);
    if (info.argsz > MAX_ARGSZ) {
      throw new VfioError(
        `region ${index}: kernel asks for argsz ${hex(info.argsz)} (> ${hex(MAX_ARGSZ)})`,
        { code: 'ARGSZ_TOO_LARGE', region: index },
      );
    }
    buffer = encodeRegionInfo(index, info.argsz);
  }
  throw new VfioError(`region ${index}: argsz kept growing after ${MAX_ATTEMPTS} calls`, { code: 'ARGSZ_UNSTABLE', region: index });
}

function toDescription(index: number, info: VfioRegionInfo, buffer: Buffer): RegionDescription {
  const hasCaps = (info.flags & VFIO_REGION_FLAGS.CAPS) !== 0;
  const capabilities = hasCaps
    ? parseRegionCapabilities({ buffer, argsz: info.argsz, capOffset: info.capOffset, regionIndex: index, regionSize: info.size })
    : [];
  return { index, flags: info.flags, size: info.size, offset: info.offset, capabilities };
}
