/**
 * Parking: what the mapper does with a BAR whose guest range it cannot give slots to because something
 * already occupies it. PCI leaves overlapping BARs undefined rather than forbidding them, and a guest
 * writes a BAR one register at a time, so such placements happen (briefly or for good) with decode on.
 * A parked BAR keeps its mmaps but has no KVM slot and no DMA map: every access exits and the guest view
 * forwards it to the device. This file holds the decision as data; the mapper applies it.
 */
import { VfioBarsError, hex } from '../errors.js';
import type { PlannedBar } from '../plan/types.js';
import { StepFailure } from './direct-resource.js';

/**
 * Why a BAR is parked:
 * - `'OVERLAPS_BAR'`: its guest range overlaps another decoded BAR of the same device that holds its place;
 * - `'OVERLAPS_SLOT'`: KVM refused a slot with EEXIST (another device's BAR, guest RAM, any VMM slot);
 * - `'OVERLAPS_IOVA'`: the IOMMU refused the DMA map at its GPA with EEXIST (something else is mapped there).
 */
export type ParkCode = 'OVERLAPS_BAR' | 'OVERLAPS_SLOT' | 'OVERLAPS_IOVA';

/** A parked BAR's decision: a code for programs, a reason for people (never parsed). */
export interface BarParking {
  /** Why the BAR is parked. */
  readonly code: ParkCode;
  /** `'OVERLAPS_BAR'`: the index of the sibling BAR that keeps the overlapping range. */
  readonly bar?: number;
  /** The decision in words, for logs. */
  readonly reason: string;
}

/** A guest range [start, end) in bytes. */
interface GuestRange {
  readonly start: bigint;
  readonly end: bigint;
}

/** Where the BAR decodes in the guest, or undefined when it has no address. */
export function guestRange(bar: PlannedBar): GuestRange | undefined {
  if (bar.guestAddress === undefined) return undefined;
  return { start: bar.guestAddress, end: bar.guestAddress + bar.guestSize };
}

/** True when the two BARs' guest ranges share at least one byte. */
export function rangesOverlap(a: PlannedBar, b: PlannedBar): boolean {
  const ra = guestRange(a);
  const rb = guestRange(b);
  return ra !== undefined && rb !== undefined && ra.start < rb.end && rb.start < ra.end;
}

/** The parking of `bar` at its placement because sibling `holder` already decodes over it. */
export function overlapsBar(bar: PlannedBar, holder: PlannedBar): BarParking {
  const range = (b: PlannedBar): string => `${hex(b.guestAddress!)}+${hex(b.guestSize)}`;
  return {
    code: 'OVERLAPS_BAR',
    bar: holder.index,
    reason: `BAR${bar.index} at ${range(bar)} overlaps BAR${holder.index} at ${range(holder)}, which keeps its slots: `
      + `BAR${bar.index} parked (no slot, every access trapped and forwarded to the device) until the overlap ends`,
  };
}

/**
 * The parking a failed attach asks for, or undefined when the failure is a real error: a KVM slot or DMA
 * map refused with EEXIST means something else holds the range, which is the guest's business, not a fault.
 */
export function refusedRange(error: unknown, bar: PlannedBar): BarParking | undefined {
  if (!(error instanceof StepFailure) || !(error.cause instanceof VfioBarsError) || error.cause.code !== 'EEXIST') return undefined;
  const at = `${hex(bar.guestAddress ?? 0n)}+${hex(bar.guestSize)}`;
  const parked = 'parked (no slot, every access trapped and forwarded to the device)';
  if (error.step === 'kvm-slot') {
    return { code: 'OVERLAPS_SLOT', reason: `BAR${bar.index} at ${at}: KVM refused its slot (EEXIST: another slot is there): ${parked}` };
  }
  if (error.step === 'dma-map') {
    return {
      code: 'OVERLAPS_IOVA',
      reason: `BAR${bar.index} at ${at}: the IOMMU refused its DMA map (EEXIST: the IOVA is in use): ${parked}`,
    };
  }
  return undefined;
}

/** True when two parkings are the same decision (same code and holder), so it is not logged again. */
export function sameParking(a: BarParking | undefined, b: BarParking | undefined): boolean {
  return a?.code === b?.code && a?.bar === b?.bar;
}
