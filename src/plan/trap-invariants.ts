/**
 * Invariants of what backs the trapped bytes of a planned BAR (`TrappedRange.kind`/`fileOffset`), checked
 * by `checkPlanInvariants`. Returns human-readable violations (empty = sound).
 */
import type { DeviceDescription } from '../vfio/description.js';
import { hex } from '../errors.js';
import type { PlannedBar, TrappedRange } from './types.js';
import { msixInBar } from './msix-layout.js';

type Structure = { readonly offset: bigint; readonly size: bigint };

export function checkTrappedBacking(bar: PlannedBar, description: DeviceDescription): string[] {
  return [...checkOrder(bar), ...bar.trapped.flatMap((t) => checkRange(bar, t)), ...checkMsixCoverage(bar, description)];
}

/** `locateInBar` binary-searches: both lists must be sorted by `barOffset`. */
function checkOrder(bar: PlannedBar): string[] {
  const sorted = (list: readonly { barOffset: bigint }[]): boolean => list.every((x, i) => i === 0 || list[i - 1]!.barOffset < x.barOffset);
  return [...(sorted(bar.mappings) ? [] : ['mappings not sorted by barOffset']), ...(sorted(bar.trapped) ? [] : ['trapped ranges not sorted by barOffset'])];
}

function checkRange(bar: PlannedBar, t: TrappedRange): string[] {
  const where = `trapped ${t.kind} ${hex(t.barOffset)}+${hex(t.size)}`;
  const violations: string[] = [];
  if (t.size <= 0n) violations.push(`${where}: empty`);
  if (t.kind === 'padding') {
    if (t.fileOffset !== undefined) violations.push(`${where}: padding has a file offset`);
    // Inside the region (and below a relocated upper half) every byte has a device behind it.
    if (t.barOffset < bar.regionSize) violations.push(`${where}: padding inside the device region ${hex(bar.regionSize)}`);
    return violations;
  }
  if (t.fileOffset === undefined) return [...violations, `${where}: no file offset`];
  if (t.kind === 'device' && t.fileOffset + t.size > bar.regionSize) violations.push(`${where}: file offset ${hex(t.fileOffset)} runs past the region ${hex(bar.regionSize)}`);
  return violations;
}

/**
 * The MSI-X table bytes the guest sees (inside the guest BAR) are exactly the 'msix-table' bytes, the PBA
 * bytes not also table bytes exactly the 'msix-pba' bytes, and each names the matching device byte.
 */
function checkMsixCoverage(bar: PlannedBar, description: DeviceDescription): string[] {
  const device = msixInBar(description.msix, bar.index);
  const guestTable = bar.msix?.table;
  const guestPba = bar.msix?.pba;
  const violations: string[] = [];
  for (const t of bar.trapped) {
    if (t.kind === 'msix-table') violations.push(...insideStructure(t, guestTable, device?.table, []));
    if (t.kind === 'msix-pba') violations.push(...insideStructure(t, guestPba, device?.pba, guestTable ? [guestTable] : []));
  }
  const covered = (kind: TrappedRange['kind']): bigint => bar.trapped.filter((t) => t.kind === kind).reduce((n, t) => n + t.size, 0n);
  const tableBytes = guestTable ? visible(guestTable, bar.guestSize) : 0n;
  const pbaBytes = guestPba ? visible(guestPba, bar.guestSize) - (guestTable ? overlapBytes(guestPba, guestTable, bar.guestSize) : 0n) : 0n;
  if (covered('msix-table') !== tableBytes) violations.push(`'msix-table' ranges cover ${hex(covered('msix-table'))} bytes, the guest's table ${hex(tableBytes)}`);
  if (covered('msix-pba') !== pbaBytes) violations.push(`'msix-pba' ranges cover ${hex(covered('msix-pba'))} bytes, the guest's PBA ${hex(pbaBytes)}`);
  return violations;
}

/** A range of an MSI-X kind lies inside the guest's structure (outside `excluded`) and names the device byte. */
function insideStructure(t: TrappedRange, guest: Structure | undefined, device: Structure | undefined, excluded: readonly Structure[]): string[] {
  const where = `trapped ${t.kind} ${hex(t.barOffset)}+${hex(t.size)}`;
  if (!guest || !device) return [`${where}: this BAR has no such MSI-X structure`];
  if (t.barOffset < guest.offset || t.barOffset + t.size > guest.offset + guest.size) return [`${where}: outside the guest's structure ${hex(guest.offset)}+${hex(guest.size)}`];
  if (excluded.some((e) => t.barOffset < e.offset + e.size && e.offset < t.barOffset + t.size)) return [`${where}: overlaps the MSI-X table`];
  const expected = device.offset + (t.barOffset - guest.offset);
  return t.fileOffset === expected ? [] : [`${where}: file offset ${hex(t.fileOffset ?? -1n)}, the device's byte is at ${hex(expected)}`];
}

function visible(r: Structure, guestSize: bigint): bigint {
  const end = r.offset + r.size < guestSize ? r.offset + r.size : guestSize;
  return end > r.offset ? end - r.offset : 0n;
}

function overlapBytes(a: Structure, b: Structure, guestSize: bigint): bigint {
  const start = a.offset > b.offset ? a.offset : b.offset;
  const endA = a.offset + a.size, endB = b.offset + b.size;
  const end = [endA, endB, guestSize].reduce((x, y) => (x < y ? x : y));
  return end > start ? end - start : 0n;
}
