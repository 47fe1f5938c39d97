import { VfioBarsError, hex } from '../errors.js';
import { SystemError } from '../sys/system-error.js';

export interface KvmErrorDetails {
  /** errno name (`'EINVAL'`) or a library code (`'SLOTS_EXHAUSTED'`, `'API_VERSION'`). */
  code: string;
  errno?: number;
  ioctl?: string;
  slot?: number;
  guestPhysAddr?: bigint;
  memorySize?: bigint;
  userspaceAddr?: bigint;
}

/** KVM refused (or we refused before asking KVM): names the slot, GPA, size and host address involved. */
export class KvmError extends VfioBarsError {
  readonly code: string;
  readonly errno: number | undefined;
  readonly ioctl: string | undefined;
  readonly slot: number | undefined;
  readonly guestPhysAddr: bigint | undefined;
  readonly memorySize: bigint | undefined;
  readonly userspaceAddr: bigint | undefined;

  constructor(message: string, details: KvmErrorDetails, options?: ErrorOptions) {
    super(message, options);
    this.code = details.code;
    this.errno = details.errno;
    this.ioctl = details.ioctl;
    this.slot = details.slot;
    this.guestPhysAddr = details.guestPhysAddr;
    this.memorySize = details.memorySize;
    this.userspaceAddr = details.userspaceAddr;
  }

  /** Wraps a failed KVM_SET_USER_MEMORY_REGION with the region that was asked for. */
  static fromSlotFailure(cause: unknown, slot: number, gpa: bigint, size: bigint, hva: bigint): unknown {
    if (!(cause instanceof SystemError)) return cause;
    const message = `KVM_SET_USER_MEMORY_REGION slot ${slot} gpa ${hex(gpa)} size ${hex(size)} hva ${hex(hva)}: ${cause.code}`;
    return new KvmError(message, { code: cause.code, errno: cause.errno, ioctl: 'KVM_SET_USER_MEMORY_REGION', slot, guestPhysAddr: gpa, memorySize: size, userspaceAddr: hva }, { cause });
  }
}
