import { VfioBarsError, hex } from '../errors.js';
import { SystemError } from '../sys/system-error.js';
import { KvmError } from '../kvm/errors.js';

export type MapStep = 'validate' | 'mmap' | 'kvm-slot' | 'dma-map' | 'move' | 'decode' | 'unmap';

export interface MapErrorDetails {
  step: MapStep;
  /**
   * errno name of the failing call, or a library code: `'NO_GUEST_ADDRESS'`, `'ALREADY_MAPPED'`, `'NOT_MAPPED'`,
   * `'DUPLICATE_BAR'`, `'BAD_PLAN'`, `'BAD_ARGUMENT'`, `'DISPOSED'`, `'DEVICE_CLOSED'`, `'PLAN_MISMATCH'`.
   */
  code: string;
  bar?: number;
  gpa?: bigint;
  errno?: number;
  /** Errors thrown while undoing (kept, never allowed to hide the original). */
  rollbackErrors?: unknown[];
}

/** Mapping a plan (or moving/unmapping a BAR) failed; whatever this call acquired has been released. */
export class MapError extends VfioBarsError {
  readonly code: string;
  readonly step: MapStep;
  readonly bar: number | undefined;
  readonly gpa: bigint | undefined;
  readonly errno: number | undefined;
  readonly rollbackErrors: readonly unknown[];

  constructor(message: string, details: MapErrorDetails, options?: ErrorOptions) {
    super(message, options);
    this.code = details.code;
    this.step = details.step;
    this.bar = details.bar;
    this.gpa = details.gpa;
    this.errno = details.errno;
    this.rollbackErrors = details.rollbackErrors ?? [];
  }

  /** Wraps the failure of one step, keeping errno and naming the BAR and GPA. */
  static fromStep(cause: unknown, step: MapStep, bar: number, gpa: bigint | undefined, rollbackErrors: unknown[]): MapError {
    const code = cause instanceof SystemError || cause instanceof KvmError ? cause.code : cause instanceof VfioBarsError ? cause.code : 'UNKNOWN';
    const errno = cause instanceof SystemError || cause instanceof KvmError ? cause.errno : undefined;
    const where = gpa === undefined ? `BAR${bar}` : `BAR${bar} at gpa ${hex(gpa)}`;
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new MapError(`${step} failed for ${where}: ${detail}`, { step, code, bar, ...(gpa !== undefined && { gpa }), ...(errno !== undefined && { errno }), rollbackErrors }, { cause });
  }
}
