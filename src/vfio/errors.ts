import { VfioBarsError } from '../errors.js';
import type { SystemError } from '../sys/system-error.js';

/** The fields of a {@link VfioError}, as its constructor takes them. */
export interface VfioErrorDetails {
  /** A library code (`'CAP_CHAIN_LOOP'`, `'GROUP_NOT_VIABLE'`) or, wrapping a syscall, its errno name. */
  code: string;
  /** PCI address of the device concerned. */
  bdf?: string;
  /** VFIO region index the defect concerns. */
  region?: number;
  /** IOMMU group, for group/container failures. */
  group?: string;
  /** errno of the failing system call, when one failed. */
  errno?: number;
  /** ioctl request name of the failing call. */
  ioctl?: string;
  /** IO virtual address of a DMA mapping the defect concerns. */
  iova?: bigint;
  /** Size in bytes of that DMA mapping. */
  size?: bigint;
}

/**
 * VFIO refused, or returned data we cannot trust. Names the device, region or group concerned. Codes are
 * the failing call's errno name (`EBUSY`: the group is open elsewhere; `ENODEV`, `EPERM`, ...) or a library
 * code: `BAD_ARGUMENT`, `BAD_BDF`; `NO_IOMMU_GROUP`, `GROUP_NOT_VIABLE` (a device of the group is not bound
 * to vfio-pci), `NO_GROUP_NODE`, `NO_CDEV`; `API_VERSION`, `NO_IOMMU_TYPE`, `MODE_UNAVAILABLE`, `MODE_MISMATCH`;
 * codes for kernel data it cannot trust (`ARGSZ_UNSTABLE`, `ARGSZ_TOO_LARGE`, `CAP_*` and `SPARSE_*` (see parseRegionCapabilities),
 * `MSIX_BAD_BIR`, `TOO_MANY_REGIONS`, `TOO_MANY_IRQS`, `CONFIG_SHORT_READ`); `DMA_OVERLAP`, `DMA_NOT_MAPPED`,
 * `TOO_MANY_MAPPINGS`, `NO_IOMMU`; `NO_SUCH_REGION`, `OUT_OF_RANGE`; `CLOSED`.
 *
 * @example
 * try { VfioDevice.open('0000:01:00.0'); } catch (e) {
 *   if (e instanceof VfioError && e.code === 'EBUSY') console.error(`group ${e.group} is in use`);
 *   else throw e;
 * }
 */
export class VfioError extends VfioBarsError {
  /** A library code or the failing call's errno name (see the class description). */
  readonly code: string;
  /** PCI address of the device concerned. */
  readonly bdf: string | undefined;
  /** VFIO region index concerned. */
  readonly region: number | undefined;
  /** IOMMU group concerned. */
  readonly group: string | undefined;
  /** errno of the failing system call. */
  readonly errno: number | undefined;
  /** ioctl request name of the failing call. */
  readonly ioctl: string | undefined;
  /** IO virtual address of the DMA mapping concerned. */
  readonly iova: bigint | undefined;
  /** Size of that DMA mapping. */
  readonly size: bigint | undefined;

  constructor(message: string, details: VfioErrorDetails, options?: ErrorOptions) {
    super(message, options);
    this.code = details.code;
    this.bdf = details.bdf;
    this.region = details.region;
    this.group = details.group;
    this.errno = details.errno;
    this.ioctl = details.ioctl;
    this.iova = details.iova;
    this.size = details.size;
  }

  /** Wraps a failed syscall with the device context, keeping errno and ioctl name. */
  static fromSystem(error: SystemError, context: string, details: Omit<VfioErrorDetails, 'code' | 'errno' | 'ioctl'>): VfioError {
    return new VfioError(
      `${context}: ${error.message}`,
      { ...details, code: error.code, errno: error.errno, ...(error.ioctl && { ioctl: error.ioctl }) },
      { cause: error },
    );
  }
}
