import { VfioBarsError, causeFacts } from '../errors.js';

/** The fields of a {@link GuestError}, as its constructor takes them. */
export interface GuestErrorDetails {
  /** A library code (`'UNALIGNED_ACCESS'`, `'GSI_EXHAUSTED'`) or, wrapping a syscall, its errno name. */
  code: string;
  /** PCI address of the device concerned. */
  bdf?: string;
  /** BAR index concerned. */
  bar?: number;
  /** MSI-X vector concerned. */
  vector?: number;
  /** GSI concerned. */
  gsi?: number;
  /** errno of the failing system call. */
  errno?: number;
  /** ioctl request name of the failing call. */
  ioctl?: string;
  /** Errors thrown while undoing (kept, never allowed to hide the original). */
  rollbackErrors?: unknown[];
}

/**
 * The guest-facing half (config space, MMIO dispatch, MSI-X, GSI routing) refused or failed. Codes:
 * `CLOSED`, `BAD_ARGUMENT`, `BAD_CONFIG_ACCESS`, `NO_CONFIG_SPACE`, `BAR_TOO_LARGE`, `BAD_GSI_RANGE`,
 * `GSI_EXHAUSTED`, `GSI_NOT_ALLOCATED`, `NO_IRQ_ROUTING`, or the code of the wrapped failure (an errno name
 * for a failed ioctl, a MapError's code for a BAR move).
 *
 * @example
 * try { guest.configWrite(0x04, 2, command); } catch (e) {
 *   if (e instanceof GuestError) vmm.log.error(`${e.bdf} BAR${e.bar ?? '-'}: ${e.code}`); else throw e;
 * }
 */
export class GuestError extends VfioBarsError {
  /** A library code or the wrapped failure's code (see the class description). */
  readonly code: string;
  /** PCI address of the device concerned. */
  readonly bdf: string | undefined;
  /** BAR index concerned. */
  readonly bar: number | undefined;
  /** MSI-X vector concerned. */
  readonly vector: number | undefined;
  /** GSI concerned. */
  readonly gsi: number | undefined;
  /** errno of the failing system call. */
  readonly errno: number | undefined;
  /** ioctl request name of the failing call. */
  readonly ioctl: string | undefined;
  /** Errors thrown while undoing (never allowed to hide this one). */
  readonly rollbackErrors: readonly unknown[];

  constructor(message: string, details: GuestErrorDetails, options?: ErrorOptions) {
    super(message, options);
    this.code = details.code;
    this.bdf = details.bdf;
    this.bar = details.bar;
    this.vector = details.vector;
    this.gsi = details.gsi;
    this.errno = details.errno;
    this.ioctl = details.ioctl;
    this.rollbackErrors = details.rollbackErrors ?? [];
  }

  /** Wraps a failure (a SystemError keeps its errno and ioctl) with what was being done. */
  static wrap(cause: unknown, context: string, details: Omit<GuestErrorDetails, 'code' | 'errno' | 'ioctl'>): GuestError {
    if (cause instanceof GuestError && details.rollbackErrors === undefined) return cause;
    const { detail, ...facts } = causeFacts(cause);
    return new GuestError(`${context}: ${detail}`, { ...details, ...facts }, { cause });
  }
}
