/* The planner's entry points (documented on planBarMappings and replan). */
import type { DeviceDescription } from '../vfio/description.js';
import { regionByIndex } from '../vfio/description.js';
import type { MappingPlan, PlanOptions, PlannedBar, PlanWarning, SkipCode, SkippedBar } from './types.js';
import { PlanError } from './errors.js';
import { validatePageSize } from './page-math.js';
import { msixInBar } from './msix-layout.js';
import { planRelativeBar } from './plan-bar.js';
import { isPlacementWarning, placeBar } from './place-bar.js';
import { replanBar } from './replan-bar.js';
import { validateDescription, validatePlan } from './validate.js';
import { describeValue } from './page-math.js';
import { deepFreeze } from '../util/deep-freeze.js';

/** Also importable from here (the mapper's move path imports the planner). */
export { replanBar, movedBar } from './replan-bar.js';

const BAR_INDICES = [0, 1, 2, 3, 4, 5] as const;

/**
 * Plans every BAR of `description` for a host with `options.pageSize` pages: a pure function of (device
 * description, host page size, guest BAR addresses) that decides, per BAR, the guest-visible size (and the
 * config-space `sizeMask`), where MSI-X appears, what to map directly and what to trap, each with a reason.
 * No I/O: plan a captured description on any machine. Without `barAddresses` the plan is relative (no GPAs);
 * the mapper needs addresses, so give them, or place BARs later with {@link replan}. The plan is deeply
 * frozen (an immutable value, as its readonly types say): the mapper keeps it without copying and checks it
 * once however often it is mapped.
 *
 * @throws PlanError: the description's defects (validateDescription's codes), bad options (`BAD_OPTIONS`,
 *   `BAD_PAGE_SIZE`, `BAD_MSIX_STRATEGY`, `NO_SUCH_BAR`, `BAD_GUEST_ADDRESS`), or placements the plan cannot
 *   represent (validatePlan's codes, e.g. `BAR_ABOVE_4G`, `BAR_WRAPS`, `BARS_OVERLAP`).
 * @example
 * const plan = planBarMappings(device.describe(), { pageSize: 0x10000, barAddresses: { 0: 0x80_0000_0000n } });
 */
export function planBarMappings(description: DeviceDescription, options: PlanOptions): MappingPlan {
  if (typeof options !== 'object' || options === null) {
    throw new PlanError('BAD_OPTIONS', `plan options must be an object, got ${describeValue(options)}`);
  }
  validateDescription(description);
  const pageSize = validatePageSize(options.pageSize);
  const strategy = options.msix ?? 'relocate';
  if (strategy !== 'relocate' && strategy !== 'hole') {
    throw new PlanError('BAD_MSIX_STRATEGY', `msix strategy ${String(strategy)} is not 'relocate' or 'hole'`);
  }
  const addresses = guestAddresses(options.barAddresses);
  const bars: PlannedBar[] = [];
  const warnings: PlanWarning[] = [];
  const skipped: SkippedBar[] = [];

  for (const index of BAR_INDICES) {
    const skip = whySkip(description, index);
    if (skip) {
      skipped.push(skip);
      if (addresses.has(index)) throw new PlanError('NO_SUCH_BAR', `guest address given for BAR${index}, but ${skip.reason}`, index);
      continue;
    }
    const relative = planRelativeBar({
      index,
      region: regionByIndex(description, index)!,
      register: description.bars.find((b) => b.index === index),
      msix: msixInBar(description.msix, index),
      pageSize,
      strategy,
    });
    const placed = placeBar(relative, pageSize, addresses.get(index));
    warnings.push(...relative.warnings, ...placed.warnings);
    bars.push(placed.bar);
  }
  const plan: MappingPlan = { pageSize, msixStrategy: strategy, bars, warnings, skipped };
  validatePlan(plan);
  return deepFreeze(plan);
}

/**
 * The same plan with BAR `barIndex` at a new guest address: only GPAs (and alignment consequences) change.
 * The BAR's placement warnings are replaced by those of its new address (see `replanBar`). A frozen plan
 * (as {@link planBarMappings} returns) gives a frozen plan; an unfrozen one is left unfrozen, its objects shared.
 *
 * @throws PlanError `NO_SUCH_BAR` when the plan has no BAR `barIndex`, `BAD_GUEST_ADDRESS` for an
 *   address that is not a u64 bigint, the input plan's defects (validatePlan), or a placement the plan
 *   cannot represent (`BAR_WRAPS`, `BAR_ABOVE_4G`, `BARS_OVERLAP`).
 * @example
 * ```ts
 * const moved = replan(plan, 0, 0x90_0000_0000n); // the guest wrote a new address into BAR0
 * ```
 */
export function replan(plan: MappingPlan, barIndex: number, guestAddress: bigint): MappingPlan {
  if (typeof guestAddress !== 'bigint' || guestAddress < 0n || guestAddress >= 1n << 64n) {
    const message = `guest address for BAR${describeValue(barIndex)} must be a u64 bigint, got ${describeValue(guestAddress)}`;
    throw new PlanError('BAD_GUEST_ADDRESS', message);
  }
  validatePlan(plan);
  const target = plan.bars.find((b) => b.index === barIndex);
  if (!target) {
    const bar = typeof barIndex === 'number' ? barIndex : undefined;
    throw new PlanError('NO_SUCH_BAR', `BAR${describeValue(barIndex)} is not in the plan`, bar);
  }
  const moved = movedPlan(plan, barIndex, replanBar(target, plan.pageSize, guestAddress));
  validatePlan(moved);
  return Object.isFrozen(plan) ? deepFreeze(moved) : moved;
}

function movedPlan(plan: MappingPlan, barIndex: number, next: ReturnType<typeof replanBar>): MappingPlan {
  const bars = plan.bars.map((bar) => (bar.index === barIndex ? next.bar : bar));
  const unchanged = next.warnings.length === 0 && !plan.warnings.some((w) => w.bar === barIndex && isPlacementWarning(w));
  if (unchanged) return { ...plan, bars };
  const warnings = [...plan.warnings.filter((w) => w.bar !== barIndex || !isPlacementWarning(w)), ...next.warnings];
  return { ...plan, bars, warnings };
}

function whySkip(description: DeviceDescription, index: number): SkippedBar | undefined {
  const skip = (code: SkipCode, reason: string): SkippedBar => ({ index, code, reason });
  const register = description.bars.find((b) => b.index === index);
  if (register?.kind === 'upper-half') return skip('upper-half', `upper half of 64-bit BAR${index - 1}`);
  if (register?.kind === 'io') return skip('io-bar', 'I/O port BAR: not MMIO, the VMM emulates port I/O');
  const region = regionByIndex(description, index);
  if (!region) return skip('no-region', 'no VFIO region');
  if (region.size === 0n) return skip('empty-region', 'region size 0 (BAR not implemented)');
  return undefined;
}

function guestAddresses(input: PlanOptions['barAddresses']): Map<number, bigint> {
  if (input !== undefined && (typeof input !== 'object' || input === null)) {
    throw new PlanError('BAD_OPTIONS', `barAddresses must be a Map or an object, got ${describeValue(input)}`);
  }
  const entries = addressEntries(input);
  const map = new Map<number, bigint>();
  for (const [index, address] of entries) {
    if (!Number.isInteger(index) || index < 0 || index > 5) {
      throw new PlanError('NO_SUCH_BAR', `guest address for BAR index ${describeValue(index)}: BARs are 0-5`);
    }
    if (typeof address !== 'bigint' || address < 0n || address >= 1n << 64n) {
      throw new PlanError('BAD_GUEST_ADDRESS', `guest address for BAR${index} must be a u64 bigint, got ${describeValue(address)}`, index);
    }
    map.set(index, address);
  }
  return map;
}


function isMap(input: NonNullable<PlanOptions['barAddresses']>): input is ReadonlyMap<number, bigint> {
  return input instanceof Map;
}

/** The (BAR index, address) pairs of a Map or a plain object keyed by index (not yet validated). */
function addressEntries(input: PlanOptions['barAddresses']): [number, unknown][] {
  if (input === undefined) return [];
  if (isMap(input)) return [...input.entries()];
  return Object.entries(input).map(([k, v]): [number, unknown] => [Number(k), v]);
}
