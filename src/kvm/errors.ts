import { VfioBarsError, hex } from '../errors.js';
import { SystemError } from '../sys/system-error.js';

/** The fields of a {@link KvmError}, as its constructor takes them. */
export interface KvmErrorDetails {
  /** errno name (`'EINVAL'`) or a library code (`'SLOTS_EXHAUSTED'`, `'API_VERSION'`). */
  code: string;
  /** errno of the failing ioctl. */
  errno?: number;
  /** The failing ioctl's name. */
  ioctl?: string;
  /** KVM memory slot id involved. */
  slot?: number;
  /** Guest physical address of that slot. */
  guestPhysAddr?: bigint;
  /** Its size. */
  memorySize?: bigint;
  /** Its host virtual address. */
  userspaceAddr?: bigint;
}

/**
 * KVM refused (or we refused before asking KVM): names the slot, GPA, size and host address involved. Codes:
 * the failing ioctl's errno name (`EINVAL` for a misaligned slot, `EEXIST` for an overlapping one, ...) or
 * `API_VERSION`, `BAD_ARGUMENT`, `BAD_SLOT_RANGE`, `SLOTS_EXHAUSTED`, `SLOT_IN_USE`, `NO_SUCH_SLOT`, `CLOSED`,
 * `NO_RUN_PAGE`, `NO_VIEW`, `NO_VFIO_DEVICE`, `PROBE_STUCK`, `PROBE_UNEXPECTED_EXIT`, `UNSUPPORTED_ARCH`.
 *
 * @example
 * try { vm.addSlot(region); } catch (e) {
 *   if (e instanceof KvmError && e.code === 'SLOTS_EXHAUSTED') grantMoreSlots(); else throw e;
 * }
 */
export class KvmError extends VfioBarsError {
  /** errno name or library code (see the class description). */
  readonly code: string;
  /** errno of the failing ioctl. */
  readonly errno: number | undefined;
  /** The failing ioctl's name. */
  readonly ioctl: string | undefined;
  /** KVM memory slot id involved. */
  readonly slot: number | undefined;
  /** Guest physical address of that slot. */
  readonly guestPhysAddr: bigint | undefined;
  /** Its size. */
  readonly memorySize: bigint | undefined;
  /** Its host virtual address. */
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
    return new KvmError(
      message,
      {
        code: cause.code,
        errno: cause.errno,
        ioctl: 'KVM_SET_USER_MEMORY_REGION',
        slot,
        guestPhysAddr: gpa,
        memorySize: size,
        userspaceAddr: hva,
      },
      { cause },
    );
  }
}
