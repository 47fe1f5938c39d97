/**
 * Root of every error vfio-bars throws on purpose. Each layer has its own subclass
 * (`SystemError`, `VfioError`, `PlanError`, `KvmError`, `MapError`, `GuestError`, `NativeShimError`), so a VMM
 * can tell a kernel refusal from a bad plan without parsing messages. Anything else thrown is a bug.
 *
 * @example
 * try { mapper.map(plan); } catch (e) {
 *   if (!(e instanceof VfioBarsError)) throw e;
 *   console.error(`${e.name} ${e.code}: ${e.message}`);
 * }
 */
export abstract class VfioBarsError extends Error {
  /** A stable, machine-readable code, e.g. `'EINVAL'` or `'CAP_CHAIN_LOOP'`. */
  abstract readonly code: string;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Formats a u64 for messages: always hex, never a lossy number. */
export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

/** What an error that wraps another copies from it (see {@link causeFacts}). */
export interface CauseFacts {
  /** The cause's code, or `'UNKNOWN'` for something not thrown on purpose. */
  readonly code: string;
  /** The failing call's errno, when the cause carries one (SystemError, KvmError, VfioError...). */
  readonly errno?: number;
  /** The failing ioctl's name, when the cause carries one. */
  readonly ioctl?: string;
  /** The cause's message, for the wrapper's own. */
  readonly detail: string;
}

/**
 * The code, errno, ioctl and message of `cause`, for a layer that wraps it with its own context (MapError,
 * GuestError): one rule, so every wrapper reports a kernel refusal the same way.
 */
export function causeFacts(cause: unknown): CauseFacts {
  const detail = cause instanceof Error ? cause.message : String(cause);
  if (!(cause instanceof VfioBarsError)) return { code: 'UNKNOWN', detail };
  const carried = cause as VfioBarsError & { errno?: unknown; ioctl?: unknown };
  return {
    code: cause.code,
    detail,
    ...(typeof carried.errno === 'number' && { errno: carried.errno }),
    ...(typeof carried.ioctl === 'string' && { ioctl: carried.ioctl }),
  };
}
