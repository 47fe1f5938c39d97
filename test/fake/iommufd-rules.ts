/**
 * The fake kernel's iommufd/cdev answers that Linux 6.12 gave in the emulated tier (test/emu, kernel from
 * linux-source-6.12): a cdev device fd refuses everything but BIND_IOMMUFD until bound (EINVAL), BIND
 * validates flags and the fd number, VFIO_DEVICE_FEATURE validates its header and knows no DMA_BUF before
 * 6.19 (ENOTTY), and IOMMU_IOAS_MAP of a BAR mmap (VM_PFNMAP: GUP refuses it) is EFAULT.
 */
import { constants } from 'node:os';
import { VFIO_DEVICE_FEATURE_FLAGS, VFIO_DEVICE_FEATURE_ID, decodeDeviceFeature, type IoctlName } from '../../src/uapi/index.js';

const E = constants.errno;
/** Linux's EBADFD (77, "file descriptor in bad state"), which Node's errno table lacks. */
export const EBADFD = 77;

/**
 * What Linux 6.12 answered to test/emu/guest/cdev-probe.mjs on QEMU's NVMe (errno per step, 0 = success),
 * captured in the emulated tier; the fake kernel must give the same answers to the same probe.
 */
export const LINUX_612_CDEV_ANSWERS = {
  regionInfoBeforeBind: E.EINVAL,
  preadBeforeBind: E.EINVAL,
  attachBeforeBind: E.EINVAL,
  featureBeforeBind: E.EINVAL,
  bindNonZeroFlags: E.EINVAL,
  bindNegativeFd: E.EINVAL,
  // iommufd_ctx_from_fd: a valid fd that is not an iommufd is EBADFD, not EBADF.
  bindNotIommufd: EBADFD,
  bind: 0,
  secondBind: E.EINVAL,
  attachUnknownId: E.ENOENT,
  featureDmaBufProbe: E.ENOTTY,
  featureUnknownFlag: E.EINVAL,
} as const;

/** vfio_device_fops_unl_ioctl: on a cdev fd, only BIND_IOMMUFD is allowed before the bind (EINVAL otherwise). */
export function cdevNotBound(device: { cdev?: boolean; bound?: boolean }, request: IoctlName | 'pread' | 'pwrite' | 'mmap'): boolean {
  return device.cdev === true && device.bound !== true && request !== 'VFIO_DEVICE_BIND_IOMMUFD';
}

/** vfio_df_ioctl_bind_iommufd: argsz below 16, non-zero flags or a negative iommufd are EINVAL. */
export function bindArgumentsInvalid(buffer: Buffer): boolean {
  return buffer.length < 16 || buffer.readUInt32LE(0) < 16 || buffer.readUInt32LE(4) !== 0 || buffer.readInt32LE(8) < 0;
}

/**
 * vfio_ioctl_device_feature + vfio_pci_core_ioctl_feature: bad header → EINVAL; DMA_BUF only when the
 * kernel has it (6.19+, `dmaBufExport`), where a PROBE with GET answers 0; anything else here → ENOTTY.
 * @returns 0 or the errno to fail with.
 */
export function deviceFeature(buffer: Buffer, dmaBufExport: boolean): number {
  if (buffer.length < 8) return E.EFAULT;
  const { argsz, flags, feature } = decodeDeviceFeature(buffer);
  const { MASK, GET, SET, PROBE } = VFIO_DEVICE_FEATURE_FLAGS;
  const known = MASK | GET | SET | PROBE;
  if (argsz < 8 || (flags & ~known) !== 0) return E.EINVAL;
  const probe = (flags & VFIO_DEVICE_FEATURE_FLAGS.PROBE) !== 0;
  if (!probe && (flags & VFIO_DEVICE_FEATURE_FLAGS.GET) !== 0 && (flags & VFIO_DEVICE_FEATURE_FLAGS.SET) !== 0) return E.EINVAL;
  if (feature !== VFIO_DEVICE_FEATURE_ID.DMA_BUF || !dmaBufExport) return E.ENOTTY;
  // vfio_check_feature: DMA_BUF is GET-only; a PROBE answers 0, a real GET would return a dma-buf fd.
  if ((flags & VFIO_DEVICE_FEATURE_FLAGS.SET) !== 0) return E.EINVAL;
  return probe ? 0 : E.EINVAL;
}

/** iopt_map_user_pages → pin_user_pages: a range touching a VM_PFNMAP mapping (a BAR mmap) is EFAULT. */
export function touchesPfnmap(mappings: Iterable<[bigint, { length: bigint; pfnmap: boolean }]>, userVa: bigint, length: bigint): boolean {
  for (const [address, m] of mappings) if (m.pfnmap && userVa < address + m.length && address < userVa + length) return true;
  return false;
}
