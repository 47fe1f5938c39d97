/**
 * `VFIO_DEVICE_FEATURE` (include/uapi/linux/vfio.h, Linux 5.18+): one ioctl, many features, each named by
 * a 16-bit index in `flags` beside GET/SET/PROBE bits. The library only probes (PROBE with GET), to learn
 * what a device's driver supports before relying on it.
 */
import { checkU32 } from './u64.js';
import { need } from './vfio.js';

/** `struct vfio_device_feature`: `u32 argsz, u32 flags`, then the feature's `data[]`. */
export const SIZEOF_VFIO_DEVICE_FEATURE = 8;

/** Bits of `vfio_device_feature.flags` besides the feature index in bits 0-15. */
export const VFIO_DEVICE_FEATURE_FLAGS = { MASK: 0xffff, GET: 1 << 16, SET: 1 << 17, PROBE: 1 << 18 } as const;

/** Feature indices. DMA_BUF (11, Linux 6.19+) exports a BAR range as a dma-buf, e.g. for iommufd P2P maps. */
export const VFIO_DEVICE_FEATURE_ID = {
  PCI_VF_TOKEN: 0,
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  LOW_POWER_ENTRY: 3,
  LOW_POWER_ENTRY_WITH_WAKEUP: 4,
  LOW_POWER_EXIT: 5,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
  MIG_DATA_SIZE: 9,
  BUS_MASTER: 10,
  DMA_BUF: 11,
} as const;

/**
 * A `vfio_device_feature` header asking whether `feature` supports `access` (PROBE: the kernel answers
 * 0 when it does, ENOTTY when the device has no such feature, EINVAL when the access is not allowed).
 * @throws RangeError when `feature` is outside the 16-bit index space.
 */
export function encodeDeviceFeatureProbe(feature: number, access: 'get' | 'set'): Buffer {
  if (!Number.isInteger(feature) || feature < 0 || feature > VFIO_DEVICE_FEATURE_FLAGS.MASK) {
    throw new RangeError(`feature index ${feature} is outside 0..0xffff`);
  }
  const b = Buffer.alloc(SIZEOF_VFIO_DEVICE_FEATURE);
  const accessFlag = access === 'get' ? VFIO_DEVICE_FEATURE_FLAGS.GET : VFIO_DEVICE_FEATURE_FLAGS.SET;
  b.writeUInt32LE(SIZEOF_VFIO_DEVICE_FEATURE, 0);
  b.writeUInt32LE(checkU32('flags', VFIO_DEVICE_FEATURE_FLAGS.PROBE | accessFlag | feature), 4);
  return b;
}

/** Reads back a `vfio_device_feature` header (what a fake kernel sees). */
export function decodeDeviceFeature(b: Buffer): { argsz: number; flags: number; feature: number } {
  need(b, SIZEOF_VFIO_DEVICE_FEATURE, 'vfio_device_feature');
  const flags = b.readUInt32LE(4);
  return { argsz: b.readUInt32LE(0), flags, feature: flags & VFIO_DEVICE_FEATURE_FLAGS.MASK };
}
