/**
 * Giving a relative BAR plan its guest address. KVM needs page-aligned GPAs: at an unaligned address
 * the direct mappings are suspended (trapped, with a warning) rather than failing, and a later `replan`
 * to an aligned address restores them.
 */
import { hex } from '../errors.js';
import type { DirectMapping, PlannedBar, TrappedRange } from './types.js';
import type { RelativeBar } from './plan-bar.js';
import { isAligned } from './page-math.js';

export const SUSPENDED_PREFIX = 'suspended:';

const U32_MASK = 0xffff_ffffn;
const U64_MASK = (1n << 64n) - 1n;

export function placeBar(bar: RelativeBar, pageSize: bigint, guestAddress: bigint | undefined, warnings: string[]): PlannedBar {
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
  if (guestAddress === undefined) return { ...base, mappings: bar.mappings, trapped: bar.trapped, reasons: bar.reasons };

  const reasons = [...bar.reasons];
  if (!isAligned(guestAddress, bar.guestSize)) {
    const note = `guest address ${hex(guestAddress)} is not aligned to the BAR size ${hex(bar.guestSize)} (a guest programming the BAR through config space cannot do this)`;
    reasons.push(note);
    warnings.push(`BAR${bar.index}: ${note}`);
  }
  if (bar.mappings.length > 0 && !isAligned(guestAddress, pageSize)) {
    const note = `guest address ${hex(guestAddress)} is not page-aligned (page ${hex(pageSize)}): direct mappings suspended, the whole BAR is trapped`;
    reasons.push(note);
    warnings.push(`BAR${bar.index}: ${note}`);
    return { ...base, guestAddress, mappings: [], suspended: bar.mappings, trapped: suspendedTrapped(bar), reasons };
  }
  const mappings = bar.mappings.map((m): DirectMapping => ({ ...m, gpa: guestAddress + m.barOffset }));
  return { ...base, guestAddress, mappings, trapped: bar.trapped, reasons };
}

function suspendedTrapped(bar: RelativeBar): TrappedRange[] {
  const fromMappings = bar.mappings.map((m) => ({ barOffset: m.barOffset, size: m.size, reason: `${SUSPENDED_PREFIX} guest address not page-aligned (${m.reason})` }));
  return [...bar.trapped, ...fromMappings].sort((a, b) => (a.barOffset < b.barOffset ? -1 : 1));
}

/** Rebuilds the relative plan of a placed BAR (undoing suspension), for `replan`. */
export function relativeOf(bar: PlannedBar): RelativeBar {
  const mappings = [...bar.mappings, ...(bar.suspended ?? [])]
    .map(({ gpa: _gpa, ...m }) => m)
    .sort((a, b) => (a.barOffset < b.barOffset ? -1 : 1));
  const placementNotes = /^guest address 0x[0-9a-f]+ is not/;
  return {
    index: bar.index,
    regionOffset: bar.regionOffset,
    regionSize: bar.regionSize,
    guestSize: bar.guestSize,
    is64Bit: bar.is64Bit,
    prefetchable: bar.prefetchable,
    ...(bar.msix && { msix: bar.msix }),
    mappings,
    trapped: bar.trapped.filter((t) => !t.reason.startsWith(SUSPENDED_PREFIX)),
    reasons: bar.reasons.filter((r) => !placementNotes.test(r)),
    warnings: [],
  };
}
