import { VfioBarsError } from '../errors.js';
import type { SystemError } from '../sys/system-error.js';

export interface VfioErrorDetails {
  /** A library code (`'CAP_CHAIN_LOOP'`, `'GROUP_NOT_VIABLE'`) or, wrapping a syscall, its errno name. */
  code: string;
  bdf?: string;
  /** VFIO region index the defect concerns. */
  region?: number;
  /** IOMMU group, for group/container failures. */
  group?: string;
  errno?: number;
  ioctl?: string;
  /** IO virtual address of a DMA mapping the defect concerns. */
  iova?: bigint;
  /** Size in bytes of that DMA mapping. */
  size?: bigint;
}

/** VFIO refused, or returned data we cannot trust. Names the device, region or group concerned. */
export class VfioError extends VfioBarsError {
  readonly code: string;
  readonly bdf: string | undefined;
  readonly region: number | undefined;
  readonly group: string | undefined;
  readonly errno: number | undefined;
  readonly ioctl: string | undefined;
  readonly iova: bigint | undefined;
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
    return new VfioError(`${context}: ${error.message}`, { ...details, code: error.code, errno: error.errno, ...(error.ioctl && { ioctl: error.ioctl }) }, { cause: error });
  }
}
