/**
 * Giving a relative BAR plan its guest address. KVM needs page-aligned GPAs: at an unaligned address
 * the direct mappings are suspended (trapped, with a warning) rather than failing, and a later `replan`
 * to an aligned address restores them.
 */
import { hex } from '../errors.js';
import type { BarNote, BarNoteCode, DirectMapping, PlannedBar, PlanWarning, TrappedRange } from './types.js';
import type { RelativeBar } from './plan-bar.js';
import { isAligned } from './page-math.js';
import { classify } from './trapped-ranges.js';
import { span } from './ranges.js';

const U32_MASK = 0xffff_ffffn;
const U64_MASK = (1n << 64n) - 1n;

/** Notes that depend on the guest address: `placeBar` adds them, `relativeOf` removes them. */
const PLACEMENT_NOTES: ReadonlySet<BarNoteCode> = new Set<BarNoteCode>(['unaligned-guest-address', 'suspended']);

/** A placed BAR and the warnings its guest address caused (empty for a well-aligned address). */
export interface PlacedBar {
  readonly bar: PlannedBar;
  readonly warnings: readonly PlanWarning[];
}

export function placeBar(bar: RelativeBar, pageSize: bigint, guestAddress: bigint | undefined): PlacedBar {
  const sizeMask = ~(bar.guestSize - 1n) & (bar.is64Bit ? U64_MASK : U32_MASK);
  const base = {
    index: bar.index,
    regionOffset: bar.regionOffset,
    regionSize: bar.regionSize,
    guestSize: bar.guestSize,
    sizeMask,
    is64Bit: bar.is64Bit,
    prefetchable: bar.prefetchable,
    ...(bar.msix && { msix: bar.msix }),
  };
  if (guestAddress === undefined) return { bar: { ...base, mappings: bar.mappings, trapped: bar.trapped, reasons: bar.reasons }, warnings: [] };

  const reasons: BarNote[] = [...bar.reasons];
  const warnings: PlanWarning[] = [];
  const note = (n: BarNote & { code: 'unaligned-guest-address' | 'suspended' }): void => {
    reasons.push(n);
    warnings.push({ bar: bar.index, ...n });
  };
  if (!isAligned(guestAddress, bar.guestSize)) {
    note({ code: 'unaligned-guest-address', message: `guest address ${hex(guestAddress)} is not aligned to the BAR size ${hex(bar.guestSize)} (a guest programming the BAR through config space cannot do this)` });
  }
  if (bar.mappings.length > 0 && !isAligned(guestAddress, pageSize)) {
    note({ code: 'suspended', message: `guest address ${hex(guestAddress)} is not page-aligned (page ${hex(pageSize)}): direct mappings suspended, the whole BAR is trapped` });
    return { bar: { ...base, guestAddress, mappings: [], suspended: bar.mappings, trapped: suspendedTrapped(bar), reasons }, warnings };
  }
  const mappings = bar.mappings.map((m): DirectMapping => ({ ...m, gpa: guestAddress + m.barOffset }));
  return { bar: { ...base, guestAddress, mappings, trapped: bar.trapped, reasons }, warnings };
}

/**
 * Trapped ranges that stand in for suspended mappings: `'device'` at the mapping's region offsets, and
 * `'padding'` for the part of an expanded mapping past the region; cause `'suspended'` for all of them.
 * Mappings are in the lower half of a relocated BAR, so no MSI-X structure is among them.
 */
function suspendedTrapped(bar: RelativeBar): TrappedRange[] {
  const geometry = { regionSize: bar.regionSize, guestSize: bar.guestSize };
  const fromMappings = bar.mappings.flatMap((m) =>
    classify({ span: span(m.barOffset, m.barOffset + m.size), cause: 'suspended', why: `direct mapping ${hex(m.barOffset)}+${hex(m.size)} suspended (guest address not page-aligned)` }, geometry),
  );
  return [...bar.trapped, ...fromMappings].sort((a, b) => (a.barOffset < b.barOffset ? -1 : 1));
}

/** Rebuilds the relative plan of a placed BAR (undoing suspension and placement notes), for `replanBar`. */
export function relativeOf(bar: PlannedBar): RelativeBar {
  const mappings = [...bar.mappings, ...(bar.suspended ?? [])]
    .map(({ gpa: _gpa, ...m }) => m)
    .sort((a, b) => (a.barOffset < b.barOffset ? -1 : 1));
  return {
    index: bar.index,
    regionOffset: bar.regionOffset,
    regionSize: bar.regionSize,
    guestSize: bar.guestSize,
    is64Bit: bar.is64Bit,
    prefetchable: bar.prefetchable,
    ...(bar.msix && { msix: bar.msix }),
    mappings,
    trapped: bar.trapped.filter((t) => t.cause !== 'suspended'),
    reasons: bar.reasons.filter((r) => !PLACEMENT_NOTES.has(r.code)),
    warnings: [],
  };
}

/** True for warnings that `placeBar` produces (so a move replaces them). */
export function isPlacementWarning(warning: PlanWarning): boolean {
  return warning.code === 'unaligned-guest-address' || warning.code === 'suspended';
}
