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
