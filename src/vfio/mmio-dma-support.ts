/**
 * Can this iommufd device's BARs be DMA-mapped for peer-to-peer DMA? iommufd pins pages with GUP, which a
 * BAR mmap (VM_PFNMAP) refuses: `IOMMU_IOAS_MAP` of it fails with EFAULT. The only way in is exporting the
 * BAR as a dma-buf (`VFIO_DEVICE_FEATURE_DMA_BUF`, Linux 6.19+) and mapping that with
 * `IOMMU_IOAS_MAP_FILE`. One feature probe on the bound device fd tells which case this kernel is.
 */
import { constants } from 'node:os';
import { VFIO_DEVICE_FEATURE_ID, encodeDeviceFeatureProbe } from '../uapi/index.js';
import type { Syscalls } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';

/** Why BAR (MMIO) ranges cannot be DMA-mapped through this IOMMU address space; see `DmaMapper`. */
export interface MmioDmaUnsupported {
  /**
   * `'IOMMUFD_NO_DMABUF_EXPORT'`: the kernel cannot export BARs as dma-bufs; `'IOMMUFD_DMABUF_NOT_USED'`: it
   * can, this library does not use it yet.
   */
  readonly code: 'IOMMUFD_NO_DMABUF_EXPORT' | 'IOMMUFD_DMABUF_NOT_USED';
  /** The same in words, logged once by the mapper. */
  readonly message: string;
}

/** The probe's "no such feature" answers: ENOTTY (unknown index), EOPNOTSUPP (variant driver), EINVAL. */
const NOT_SUPPORTED = new Set<number>([constants.errno.ENOTTY, constants.errno.EOPNOTSUPP, constants.errno.EINVAL]);

/**
 * Probes `VFIO_DEVICE_FEATURE_DMA_BUF` (PROBE | GET) on a device fd bound to iommufd and says why BAR DMA
 * maps are unavailable. Never undefined today: with dma-buf export present the library still lacks the
 * `IOMMU_IOAS_MAP_FILE` path, and says that instead.
 * @throws SystemError for any answer other than supported / not supported (e.g. EIO, EBADF).
 */
export function probeIommufdMmioDma(sys: Syscalls, deviceFd: number): MmioDmaUnsupported {
  const exported = probeDmaBufExport(sys, deviceFd);
  const effect = 'iommufd cannot DMA-map a BAR mmap (EFAULT), so peer-to-peer DMA to this device\'s BARs is unavailable';
  if (exported.supported) {
    return {
      code: 'IOMMUFD_DMABUF_NOT_USED',
      message: `the kernel exports BARs as dma-buf (VFIO_DEVICE_FEATURE_DMA_BUF) but vfio-bars does not map them with `
        + `IOMMU_IOAS_MAP_FILE yet, and ${effect}`,
    };
  }
  return {
    code: 'IOMMUFD_NO_DMABUF_EXPORT',
    message: `this kernel cannot export BARs as dma-buf (VFIO_DEVICE_FEATURE_DMA_BUF probe: ${exported.errno}; Linux 6.19+ can),`
      + ` and ${effect}`,
  };
}

function probeDmaBufExport(sys: Syscalls, deviceFd: number): { supported: true } | { supported: false; errno: string } {
  try {
    sys.ioctl(deviceFd, 'VFIO_DEVICE_FEATURE', encodeDeviceFeatureProbe(VFIO_DEVICE_FEATURE_ID.DMA_BUF, 'get'));
    return { supported: true };
  } catch (error) {
    if (error instanceof SystemError && NOT_SUPPORTED.has(error.errno)) return { supported: false, errno: error.code };
    throw error;
  }
}
