import { VfioBarsError, causeFacts, hex } from '../errors.js';

/** The mapper step that failed: argument checks, one of the three acquisitions, or one of the verbs. */
export type MapStep = 'validate' | 'mmap' | 'kvm-slot' | 'dma-map' | 'move' | 'decode' | 'unmap';

/** The fields of a {@link MapError}, as its constructor takes them. */
export interface MapErrorDetails {
  /** The step that failed. */
  step: MapStep;
  /**
   * errno name of the failing call, or a library code: `'NO_GUEST_ADDRESS'`, `'ALREADY_MAPPED'`, `'NOT_MAPPED'`,
   * `'DUPLICATE_BAR'`, `'BAD_PLAN'`, `'BAD_ARGUMENT'`, `'DISPOSED'`, `'DEVICE_CLOSED'`, `'PLAN_MISMATCH'`.
   */
  code: string;
  /** The BAR index involved. */
  bar?: number;
  /** The guest physical address involved. */
  gpa?: bigint;
  /** errno of the failing system call. */
  errno?: number;
  /** Errors thrown while undoing (kept, never allowed to hide the original). */
  rollbackErrors?: unknown[];
}

/**
 * Mapping a plan (or moving/unmapping a BAR) failed; whatever this call acquired has been released. The
 * underlying {@link SystemError} or {@link KvmError} is the `cause`.
 *
 * @example
 * try { mapper.map(plan); } catch (e) {
 *   if (e instanceof MapError && e.code === 'EINVAL') console.error(`${e.step} BAR${e.bar}: ${e.message}`);
 *   else throw e;
 * }
 */
export class MapError extends VfioBarsError {
  /** errno name of the failing call, or a library code (see {@link MapErrorDetails.code}). */
  readonly code: string;
  /** The step that failed. */
  readonly step: MapStep;
  /** The BAR index involved, when one was. */
  readonly bar: number | undefined;
  /** The guest physical address involved, when one was. */
  readonly gpa: bigint | undefined;
  /** errno of the failing system call, when one failed. */
  readonly errno: number | undefined;
  /** Errors thrown while undoing (never allowed to hide this one); empty when the rollback was clean. */
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
    const { code, errno, detail } = causeFacts(cause);
    const where = gpa === undefined ? `BAR${bar}` : `BAR${bar} at gpa ${hex(gpa)}`;
    return new MapError(
      `${step} failed for ${where}: ${detail}`,
      { step, code, bar, ...(gpa !== undefined && { gpa }), ...(errno !== undefined && { errno }), rollbackErrors },
      { cause },
    );
  }
}
