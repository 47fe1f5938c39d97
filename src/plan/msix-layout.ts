/**
 * Where the MSI-X table and PBA that live in one BAR appear to the guest, and whether to relocate them.
 *
 * Relocation (cloud-hypervisor style, fixed): double the BAR so the real BAR is the lower half and the
 * MSI-X structures sit in a fully trapped upper half. This keeps the whole real BAR directly mapped even
 * when a page-rounded table would otherwise cover all of it (the 64 KiB-page case).
 */
import type { MsixDescription } from '../vfio/description.js';
import { hex } from '../errors.js';
import { MAX_BAR_SIZE, alignDown, alignUp, maxOf, nextPowerOfTwo } from './page-math.js';
import { overlaps, span, type Span } from './ranges.js';

/** The MSI-X structures of one BAR, in device (region) offsets. */
export interface MsixInBar {
  readonly table?: { readonly offset: bigint; readonly size: bigint };
  readonly pba?: { readonly offset: bigint; readonly size: bigint };
}

export interface MsixGuestLayout {
  readonly table?: { readonly offset: bigint; readonly size: bigint };
  readonly pba?: { readonly offset: bigint; readonly size: bigint };
}

/** Largest BAR we double for a 32-bit BAR: beyond this, 32-bit MMIO space is too scarce to spend. */
export const MAX_RELOCATED_32BIT_BAR = 1n << 30n;

/** Largest guest BAR relocation may produce: 1 GiB for a 32-bit BAR, 2^63 (the largest BAR) for a 64-bit one. */
export function maxRelocatedBar(is64Bit: boolean): bigint {
  return is64Bit ? MAX_BAR_SIZE : MAX_RELOCATED_32BIT_BAR;
}

export function msixInBar(msix: MsixDescription | undefined, index: number): MsixInBar | undefined {
  if (!msix) return undefined;
  const table = msix.table.bir === index ? { offset: msix.table.offset, size: msix.table.size } : undefined;
  const pba = msix.pba.bir === index ? { offset: msix.pba.offset, size: msix.pba.size } : undefined;
  return table || pba ? { ...(table && { table }), ...(pba && { pba }) } : undefined;
}

/** Page-rounded spans of the table and PBA: what must stay out of every direct mapping. */
export function msixPageSpans(msix: MsixInBar, pageSize: bigint): Span[] {
  return [msix.table, msix.pba].flatMap((r) => (r ? [span(alignDown(r.offset, pageSize), alignUp(r.offset + r.size, pageSize))] : []));
}

export function describeMsix(msix: MsixInBar): string {
  const parts = [];
  if (msix.table) parts.push(`table ${hex(msix.table.offset)}+${hex(msix.table.size)}`);
  if (msix.pba) parts.push(`PBA ${hex(msix.pba.offset)}+${hex(msix.pba.size)}`);
  return parts.join(', ');
}

/** True when a page-rounded MSI-X structure shares a page with bytes we could otherwise map. */
export function msixCutsMappings(msix: MsixInBar, mappable: readonly Span[], pageSize: bigint): boolean {
  const pages = msixPageSpans(msix, pageSize);
  return mappable.some((area) => pages.some((page) => overlaps(page, span(alignDown(area.start, pageSize), alignUp(area.end, pageSize)))));
}

/**
 * Bytes the relocated structures occupy in the upper half: when the PBA follows the table, their
 * relative placement is kept (span from table start to PBA end); otherwise table then PBA, packed.
 */
function relocatedSpan(msix: MsixInBar): bigint {
  const { table, pba } = msix;
  if (table && pba && pba.offset >= table.offset + table.size) return pba.offset + pba.size - table.offset;
  return (table ? alignUp(table.size, 8n) : 0n) + (pba?.size ?? 0n);
}

/** Guest BAR size after relocation: max(max(regionSize, page) * 2, msixSize * 2), a power of two. */
export function relocatedGuestSize(regionSize: bigint, msix: MsixInBar, pageSize: bigint): bigint {
  const msixSize = alignUp(relocatedSpan(msix), pageSize);
  return nextPowerOfTwo(maxOf(maxOf(regionSize, pageSize) * 2n, msixSize * 2n));
}

/** Table at the start of the upper half; PBA after it (relative placement kept when it followed the table). */
export function relocatedLayout(msix: MsixInBar, guestSize: bigint): MsixGuestLayout {
  const half = guestSize / 2n;
  const { table, pba } = msix;
  if (!table) return { ...(pba && { pba: { offset: half, size: pba.size } }) };
  const tableLayout = { offset: half, size: table.size };
  if (!pba) return { table: tableLayout };
  const pbaFollowsTable = pba.offset >= table.offset + table.size;
  const pbaOffset = pbaFollowsTable ? half + (pba.offset - table.offset) : half + alignUp(table.size, 8n);
  return { table: tableLayout, pba: { offset: pbaOffset, size: pba.size } };
}
