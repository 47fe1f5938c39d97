/**
 * What backs a byte of a guest BAR, by BAR offset or by guest physical address. This runs on every
 * trapped MMIO exit, so it is a binary search over the plan's sorted arrays and allocates only its result.
 */
import type { BarLocation, DirectMapping, MappingPlan, PlannedBar, TrappedRange } from './types.js';

/**
 * The mapping or trapped range of `bar` that holds guest BAR offset `barOffset`.
 *
 * Relies on the plan's ordering (mappings and trapped ranges sorted by `barOffset`, as `planBarMappings`,
 * `replan`, `replanBar` and `planFromJSON` of such a plan produce; `checkPlanInvariants` reports otherwise).
 *
 * @returns undefined when `barOffset` is outside [0, guestSize) (or not a bigint).
 * @example
 * ```ts
 * const where = locateInBar(plan.bars[0]!, 0x1_0000n);
 * if (where?.backing === 'trapped' && where.range.kind === 'msix-table') {
 *   const entry = (where.barOffset - where.bar.msix!.table!.offset) / 16n; // the guest's vector number
 * }
 * ```
 */
export function locateInBar(bar: PlannedBar, barOffset: bigint): BarLocation | undefined {
  if (typeof barOffset !== 'bigint' || barOffset < 0n || barOffset >= bar.guestSize) return undefined;
  const range = findContaining(bar.trapped, barOffset);
  if (range) return { bar, barOffset, backing: 'trapped', range };
  const mapping = findContaining(bar.mappings, barOffset);
  if (mapping) return { bar, barOffset, backing: 'mapped', mapping };
  return undefined;
}

/**
 * The BAR, offset and backing of guest physical address `gpa`, across the placed BARs of a plan (or a
 * list of planned BARs, e.g. a mapper's current ones). BARs without a guest address are ignored.
 *
 * @returns undefined when no placed BAR contains `gpa`.
 * @example
 * ```ts
 * // In the VMM's MMIO-exit handler:
 * const where = locateGpa(plan, exit.gpa);
 * if (where?.backing === 'trapped' && where.range.kind === 'device') {
 *   const fileOffset = where.range.fileOffset! + (where.barOffset - where.range.barOffset);
 *   // forward the access to the device region at fileOffset
 * }
 * ```
 */
export function locateGpa(plan: MappingPlan | readonly PlannedBar[], gpa: bigint): BarLocation | undefined {
  if (typeof gpa !== 'bigint') return undefined;
  const bars = isBarList(plan) ? plan : plan.bars;
  for (const bar of bars) {
    const base = bar.guestAddress;
    if (base !== undefined && gpa >= base && gpa - base < bar.guestSize) return locateInBar(bar, gpa - base);
  }
  return undefined;
}

function isBarList(plan: MappingPlan | readonly PlannedBar[]): plan is readonly PlannedBar[] {
  return Array.isArray(plan);
}

/** Binary search over pieces sorted by `barOffset`, non-overlapping. */
function findContaining<T extends DirectMapping | TrappedRange>(pieces: readonly T[], offset: bigint): T | undefined {
  let low = 0;
  let high = pieces.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const piece = pieces[middle]!;
    if (offset < piece.barOffset) high = middle - 1;
    else if (offset >= piece.barOffset + piece.size) low = middle + 1;
    else return piece;
  }
  return undefined;
}
