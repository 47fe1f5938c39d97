/**
 * Moving one planned BAR to a new guest address (the guest reprogrammed it). Pure: the mapper calls it
 * on every BAR move and then applies the difference.
 */
import type { DirectMapping, PlannedBar, PlanWarning } from './types.js';
import { PlanError } from './errors.js';
import { validatePageSize } from './page-math.js';
import { placeBar, relativeOf } from './place-bar.js';
import { validateBarPlacement } from './validate-plan.js';

const U64_LIMIT = 1n << 64n;

/**
 * The plan of `bar` at guest address `guestAddress`: only GPAs and the consequences of alignment change
 * (direct mappings are suspended at an address that is not page-aligned and restored at one that is).
 * `warnings` are the placement warnings of the BAR at its new address (codes `'unaligned-guest-address'`
 * and `'suspended'`); a BAR's other warnings do not depend on its address.
 *
 * @param bar a BAR of a plan made by `planBarMappings` (or read back by `planFromJSON`) with `pageSize`.
 * @param pageSize the host page size the plan was made for (`plan.pageSize`).
 * @throws PlanError `BAD_PAGE_SIZE` for a page size that is not a power of two >= 4096,
 *   `BAD_GUEST_ADDRESS` for an address that is not a u64 bigint, `BAR_WRAPS` / `BAR_ABOVE_4G` for a placement
 *   the BAR cannot have (overlap with other BARs is checked by `replan`/`validatePlan`, which see them all).
 * @example
 * ```ts
 * const { bar: moved, warnings } = replanBar(plan.bars[0]!, plan.pageSize, 0x90_0000_0000n);
 * for (const m of moved.mappings) console.log(m.gpa); // 0x9000000000 + m.barOffset
 * ```
 */
export function replanBar(bar: PlannedBar, pageSize: bigint, guestAddress: bigint): {
  /** The BAR at its new address (GPAs filled, mappings suspended or restored). */ bar: PlannedBar;
  /** Warnings about the new placement (e.g. `'suspended'`). */ warnings: readonly PlanWarning[];
} {
  const page = validatePageSize(pageSize);
  if (typeof guestAddress !== 'bigint' || guestAddress < 0n || guestAddress >= U64_LIMIT) {
    throw new PlanError('BAD_GUEST_ADDRESS', `guest address for BAR${bar.index} must be a u64 bigint, got ` +
      `${String(guestAddress)}`, bar.index);
  }
  const quick = movedBar(bar, guestAddress);
  const moved = quick ? { bar: quick, warnings: NO_WARNINGS } : placeBar(relativeOf(bar), page, guestAddress);
  validateBarPlacement(moved.bar);
  return moved;
}

const NO_WARNINGS: readonly PlanWarning[] = Object.freeze([]);

/**
 * The common move — a placed, unsuspended BAR to a naturally aligned address, which is all a guest can
 * program through config space — changes nothing but GPAs. This is the BAR-move hot path, so it skips
 * re-deriving the relative plan. Returns undefined when the general path is needed. A frozen BAR (as
 * the planner and the mapper hold them) moves to a frozen BAR: the objects made here are frozen as they
 * are made, cheaper than a deep freeze walking the result afterwards.
 */
export function movedBar(bar: PlannedBar, guestAddress: bigint): PlannedBar | undefined {
  const clean = (address: bigint | undefined): boolean => address !== undefined && address % bar.guestSize === 0n;
  if (bar.suspended || !clean(bar.guestAddress) || !clean(guestAddress)) return undefined;
  const seal = Object.isFrozen(bar) ? Object.freeze : <T>(value: T): T => value;
  const mappings = seal(bar.mappings.map((m) => seal(mappingAt(m, guestAddress + m.barOffset))));
  // Field by field, not `{ ...bar }`: spreading a frozen object (every plan the mapper holds) takes V8's
  // slow path, several times the cost of the literal. `satisfies` breaks the build when PlannedBar gains a field.
  const moved = {
    index: bar.index, regionOffset: bar.regionOffset, regionSize: bar.regionSize, guestSize: bar.guestSize, guestAddress,
    sizeMask: bar.sizeMask, is64Bit: bar.is64Bit, prefetchable: bar.prefetchable, mappings, trapped: bar.trapped, reasons: bar.reasons,
  } satisfies Omit<Required<PlannedBar>, 'msix' | 'suspended'>;
  return seal(bar.msix === undefined ? moved : { ...moved, msix: bar.msix });
}

/** `mapping` at a new GPA (field by field, as movedBar; `satisfies` keeps the list complete). */
function mappingAt(mapping: DirectMapping, gpa: bigint): DirectMapping {
  return {
    fileOffset: mapping.fileOffset, barOffset: mapping.barOffset, size: mapping.size, gpa, prot: mapping.prot, reason: mapping.reason,
  } satisfies Required<DirectMapping>;
}
