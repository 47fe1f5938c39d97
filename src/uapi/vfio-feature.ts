/**
 * `VFIO_DEVICE_FEATURE` (include/uapi/linux/vfio.h, Linux 5.18+): one ioctl, many features, each named by
 * a 16-bit index in `flags` beside GET/SET/PROBE bits. The library only probes (PROBE with GET), to learn
 * what a device's driver supports before relying on it.
 */
import { decodeStruct, defineStruct, encodeStruct } from './layout.js';

/** `struct vfio_device_feature`: `u32 argsz, u32 flags`, then the feature's `data[]`. */
export const VFIO_DEVICE_FEATURE = defineStruct({
  name: 'vfio_device_feature', size: 8, headers: 'common', flexible: 'data',
  fields: { argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' } },
});
export const SIZEOF_VFIO_DEVICE_FEATURE = VFIO_DEVICE_FEATURE.size;

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
  const accessFlag = access === 'get' ? VFIO_DEVICE_FEATURE_FLAGS.GET : VFIO_DEVICE_FEATURE_FLAGS.SET;
  const flags = VFIO_DEVICE_FEATURE_FLAGS.PROBE | accessFlag | feature;
  return encodeStruct(VFIO_DEVICE_FEATURE, { argsz: SIZEOF_VFIO_DEVICE_FEATURE, flags });
}

/** Reads back a `vfio_device_feature` header (what a fake kernel sees). */
export function decodeDeviceFeature(b: Buffer): { argsz: number; flags: number; feature: number } {
  const { argsz, flags } = decodeStruct(VFIO_DEVICE_FEATURE, b);
  return { argsz, flags, feature: flags & VFIO_DEVICE_FEATURE_FLAGS.MASK };
}
