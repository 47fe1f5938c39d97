/**
 * `planBarMappings`: a pure function of (device description, host page size, guest BAR addresses) that
 * decides, per BAR, the guest-visible size, where MSI-X appears, what to map directly and what to trap.
 */
import type { DeviceDescription } from '../vfio/description.js';
import { regionByIndex } from '../vfio/description.js';
import type { MappingPlan, PlanOptions, PlannedBar } from './types.js';
import { PlanError } from './errors.js';
import { validatePageSize } from './page-math.js';
import { msixInBar } from './msix-layout.js';
import { planRelativeBar } from './plan-bar.js';
import { validateDescription, validatePlan } from './validate.js';
import { describeValue } from './page-math.js';
import { placeBar, relativeOf } from './place-bar.js';

const BAR_INDICES = [0, 1, 2, 3, 4, 5] as const;

/**
 * Plans every BAR of `description` for a host with `options.pageSize` pages.
 * @throws PlanError: the description's defects (validateDescription's codes), bad options (`BAD_OPTIONS`,
 *   `BAD_PAGE_SIZE`, `BAD_MSIX_STRATEGY`, `NO_SUCH_BAR`, `BAD_GUEST_ADDRESS`), or placements the plan cannot
 *   represent (validatePlan's codes, e.g. `BAR_ABOVE_4G`, `BAR_WRAPS`, `BARS_OVERLAP`).
 * @example
 * const plan = planBarMappings(device.describe(), { pageSize: 0x10000, barAddresses: { 0: 0x80_0000_0000n } });
 */
export function planBarMappings(description: DeviceDescription, options: PlanOptions): MappingPlan {
  if (typeof options !== 'object' || options === null) throw new PlanError('BAD_OPTIONS', `plan options must be an object, got ${describeValue(options)}`);
  validateDescription(description);
  const pageSize = validatePageSize(options.pageSize);
  const strategy = options.msix ?? 'relocate';
  if (strategy !== 'relocate' && strategy !== 'hole') throw new PlanError('BAD_MSIX_STRATEGY', `msix strategy ${String(strategy)} is not 'relocate' or 'hole'`);
  const addresses = guestAddresses(options.barAddresses);
  const bars: PlannedBar[] = [];
  const warnings: string[] = [];
  const skipped: { index: number; reason: string }[] = [];

  for (const index of BAR_INDICES) {
    const reasonToSkip = whySkip(description, index);
    if (reasonToSkip) {
      skipped.push({ index, reason: reasonToSkip });
      if (addresses.has(index)) throw new PlanError('NO_SUCH_BAR', `guest address given for BAR${index}, but ${reasonToSkip}`, index);
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
    warnings.push(...relative.warnings);
    bars.push(placeBar(relative, pageSize, addresses.get(index), warnings));
  }
  const plan: MappingPlan = { pageSize, msixStrategy: strategy, bars, warnings, skipped };
  validatePlan(plan);
  return plan;
}

/**
 * The same plan with BAR `barIndex` at a new guest address: only GPAs (and alignment consequences) change.
 * @throws PlanError: `BAD_GUEST_ADDRESS` (not a u64 bigint), `NO_SUCH_BAR`, the input plan's defects, or a
 *   placement the plan cannot represent (`BAR_WRAPS`, `BAR_ABOVE_4G`, `BARS_OVERLAP`).
 * @example
 * plan = replan(plan, 0, 0xc000_0000n); // the guest reprogrammed BAR0
 */
export function replan(plan: MappingPlan, barIndex: number, guestAddress: bigint): MappingPlan {
  if (typeof guestAddress !== 'bigint' || guestAddress < 0n || guestAddress >= 1n << 64n) {
    throw new PlanError('BAD_GUEST_ADDRESS', `guest address for BAR${String(barIndex)} must be a u64 bigint, got ${describeValue(guestAddress)}`);
  }
  validatePlan(plan);
  const target = plan.bars.find((b) => b.index === barIndex);
  if (!target) throw new PlanError('NO_SUCH_BAR', `BAR${describeValue(barIndex)} is not in the plan`, typeof barIndex === 'number' ? barIndex : undefined);
  const quick = movedBar(target, guestAddress);
  const moved = quick
    ? { ...plan, bars: plan.bars.map((bar) => (bar.index === barIndex ? quick : bar)) }
    : replanSlow(plan, barIndex, guestAddress);
  validatePlan(moved);
  return moved;
}

function replanSlow(plan: MappingPlan, barIndex: number, guestAddress: bigint): MappingPlan {
  const warnings = plan.warnings.filter((w) => !w.startsWith(`BAR${barIndex}: guest address`));
  const bars = plan.bars.map((bar) => (bar.index === barIndex ? placeBar(relativeOf(bar), plan.pageSize, guestAddress, warnings) : bar));
  return { ...plan, bars, warnings };
}

/**
 * The common move — a placed, unsuspended BAR to a naturally aligned address, which is all a guest can
 * program through config space — changes nothing but GPAs. This is the BAR-move hot path, so it skips
 * re-deriving the relative plan. Returns undefined when the general path is needed.
 */
export function movedBar(bar: PlannedBar, guestAddress: bigint): PlannedBar | undefined {
  const clean = (address: bigint | undefined): boolean => address !== undefined && address % bar.guestSize === 0n;
  if (bar.suspended || !clean(bar.guestAddress) || !clean(guestAddress)) return undefined;
  return { ...bar, guestAddress, mappings: bar.mappings.map((m) => ({ ...m, gpa: guestAddress + m.barOffset })) };
}

function whySkip(description: DeviceDescription, index: number): string | undefined {
  const register = description.bars.find((b) => b.index === index);
  if (register?.kind === 'upper-half') return `upper half of 64-bit BAR${index - 1}`;
  if (register?.kind === 'io') return 'I/O port BAR: not MMIO, the VMM emulates port I/O';
  const region = regionByIndex(description, index);
  if (!region) return 'no VFIO region';
  if (region.size === 0n) return 'region size 0 (BAR not implemented)';
  return undefined;
}

function guestAddresses(input: PlanOptions['barAddresses']): Map<number, bigint> {
  if (input !== undefined && (typeof input !== 'object' || input === null)) {
    throw new PlanError('BAD_OPTIONS', `barAddresses must be a Map or an object, got ${describeValue(input)}`);
  }
  const entries: [number, unknown][] = input === undefined ? [] : isMap(input) ? [...input.entries()] : Object.entries(input).map(([k, v]): [number, unknown] => [Number(k), v]);
  const map = new Map<number, bigint>();
  for (const [index, address] of entries) {
    if (!Number.isInteger(index) || index < 0 || index > 5) throw new PlanError('NO_SUCH_BAR', `guest address for BAR index ${describeValue(index)}: BARs are 0-5`);
    if (typeof address !== 'bigint' || address < 0n || address >= 1n << 64n) throw new PlanError('BAD_GUEST_ADDRESS', `guest address for BAR${index} must be a u64 bigint, got ${describeValue(address)}`, index);
    map.set(index, address);
  }
  return map;
}


function isMap(input: NonNullable<PlanOptions['barAddresses']>): input is ReadonlyMap<number, bigint> {
  return input instanceof Map;
}
