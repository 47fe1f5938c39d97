/**
 * Properties every plan must have. Tests assert them for random devices; the mapper may check them
 * before touching the kernel. Returns human-readable violations (empty = sound plan).
 */
import type { DeviceDescription } from '../vfio/description.js';
import { regionByIndex } from '../vfio/description.js';
import { hex } from '../errors.js';
import type { MappingPlan, PlannedBar } from './types.js';
import { checkTrappedBacking } from './trap-invariants.js';
import { alignUp, isAligned, isPowerOfTwo } from './page-math.js';
import { overlaps, span, type Span } from './ranges.js';

export function checkPlanInvariants(plan: MappingPlan, description: DeviceDescription): string[] {
  return plan.bars.flatMap((bar) => checkBar(bar, plan.pageSize, description).map((v) => `BAR${bar.index}: ${v}`));
}

function checkBar(bar: PlannedBar, page: bigint, description: DeviceDescription): string[] {
  const violations: string[] = [];
  const region = regionByIndex(description, bar.index);
  const fileLimit = alignUp(region?.size ?? 0n, page);
  if (!isPowerOfTwo(bar.guestSize)) violations.push(`guest size ${hex(bar.guestSize)} is not a power of two`);
  if (bar.mappings.length > 0 && bar.guestSize < page) violations.push(`guest size ${hex(bar.guestSize)} is smaller than a page`);

  const mapped: Span[] = [];
  for (const m of bar.mappings) {
    const where = `mapping ${hex(m.barOffset)}+${hex(m.size)}`;
    if (m.size <= 0n || !isAligned(m.size, page)) violations.push(`${where}: size not a positive page multiple`);
    if (!isAligned(m.barOffset, page) || !isAligned(m.fileOffset, page)) violations.push(`${where}: offset not page-aligned`);
    if (m.gpa !== undefined && !isAligned(m.gpa, page)) violations.push(`${where}: GPA ${hex(m.gpa)} not page-aligned`);
    if (m.fileOffset + m.size > fileLimit) violations.push(`${where}: beyond PAGE_ALIGN(region size) ${hex(fileLimit)}`);
    if (m.barOffset + m.size > bar.guestSize) violations.push(`${where}: beyond the guest BAR`);
    const s = span(m.barOffset, m.barOffset + m.size);
    if (mapped.some((other) => overlaps(other, s))) violations.push(`${where}: overlaps another mapping`);
    mapped.push(s);
  }
  for (const r of [bar.msix?.table, bar.msix?.pba]) {
    if (r && mapped.some((m) => overlaps(m, span(r.offset, r.offset + r.size)))) violations.push(`MSI-X range ${hex(r.offset)}+${hex(r.size)} is directly mapped`);
  }
  violations.push(...checkCoverage(bar, mapped));
  violations.push(...checkTrappedBacking(bar, description));
  return violations;
}

/** Mappings and trapped ranges together tile [0, guestSize) exactly. */
function checkCoverage(bar: PlannedBar, mapped: readonly Span[]): string[] {
  const pieces = [...mapped, ...bar.trapped.map((t) => span(t.barOffset, t.barOffset + t.size))].sort((a, b) => (a.start < b.start ? -1 : 1));
  let cursor = 0n;
  for (const piece of pieces) {
    if (piece.start !== cursor) return [`${piece.start > cursor ? 'gap' : 'overlap'} at ${hex(cursor < piece.start ? cursor : piece.start)}`];
    cursor = piece.end;
  }
  return cursor === bar.guestSize ? [] : [`coverage ends at ${hex(cursor)}, guest BAR is ${hex(bar.guestSize)}`];
}
