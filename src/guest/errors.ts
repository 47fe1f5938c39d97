import { VfioBarsError } from '../errors.js';
import { SystemError } from '../sys/system-error.js';

export interface GuestErrorDetails {
  /** A library code (`'UNALIGNED_ACCESS'`, `'GSI_EXHAUSTED'`) or, wrapping a syscall, its errno name. */
  code: string;
  bdf?: string;
  bar?: number;
  vector?: number;
  gsi?: number;
  errno?: number;
  ioctl?: string;
  /** Errors thrown while undoing (kept, never allowed to hide the original). */
  rollbackErrors?: unknown[];
}

/** The guest-facing half (config space, MMIO dispatch, MSI-X, GSI routing) refused or failed. */
export class GuestError extends VfioBarsError {
  readonly code: string;
  readonly bdf: string | undefined;
  readonly bar: number | undefined;
  readonly vector: number | undefined;
  readonly gsi: number | undefined;
  readonly errno: number | undefined;
  readonly ioctl: string | undefined;
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
    const system = cause instanceof SystemError ? cause : undefined;
    const code = cause instanceof VfioBarsError ? cause.code : 'UNKNOWN';
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new GuestError(`${context}: ${detail}`, {
      ...details, code, ...(system && { errno: system.errno }), ...(system?.ioctl !== undefined && { ioctl: system.ioctl }),
    }, { cause });
  }
}
