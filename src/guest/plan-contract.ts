/**
 * What the guest view needs from a plan: every trapped byte's kind (`device`, `msix-table`, `msix-pba`,
 * `padding`) and, for device bytes, the offset in the region. Branch plan-data adds `kind` and
 * `fileOffset` to `TrappedRange` itself; until it lands this reads them when present and otherwise
 * derives them from the BAR's geometry (the MSI-X layout, the region size, the direct mappings) —
 * never from reason strings. Delete the fallback once every plan carries kinds.
 */
import type { DirectMapping, PlannedBar, TrappedRange } from '../plan/types.js';

export type TrappedKind = 'device' | 'msix-table' | 'msix-pba' | 'padding';

/** A trapped range with its kind, as plan-data defines it. */
export interface KindedTrappedRange extends TrappedRange {
  readonly kind: TrappedKind;
  /** For `device`: the offset in the region of `barOffset`. For MSI-X kinds: the device's real table/PBA offset. */
  readonly fileOffset?: bigint;
}

/** What backs one byte range of a guest BAR. */
export type BarPiece =
  | { readonly start: bigint; readonly end: bigint; readonly backing: 'mapped'; readonly mapping: DirectMapping }
  | { readonly start: bigint; readonly end: bigint; readonly backing: 'trapped'; readonly range: KindedTrappedRange };

interface Span { start: bigint; end: bigint }

/** The BAR's pieces, sorted and covering [0, guestSize): direct and suspended mappings, and kinded traps. */
export function barPieces(bar: PlannedBar): BarPiece[] {
  const pieces: BarPiece[] = [];
  for (const mapping of [...bar.mappings]) pieces.push({ start: mapping.barOffset, end: mapping.barOffset + mapping.size, backing: 'mapped', mapping });
  const suspended = new Set((bar.suspended ?? []).map((m) => m.barOffset));
  for (const range of bar.trapped) {
    // A suspended mapping is listed as trapped too (plan/place-bar.ts): it is device memory at its file offset.
    const mapping = bar.suspended?.find((m) => m.barOffset === range.barOffset && m.size === range.size);
    if (mapping && suspended.has(range.barOffset)) {
      pieces.push({ start: range.barOffset, end: range.barOffset + range.size, backing: 'trapped', range: { ...range, kind: 'device', fileOffset: mapping.fileOffset } });
      continue;
    }
    for (const kinded of kindsOf(bar, range)) pieces.push({ start: kinded.barOffset, end: kinded.barOffset + kinded.size, backing: 'trapped', range: kinded });
  }
  return pieces.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

function kindsOf(bar: PlannedBar, range: TrappedRange): KindedTrappedRange[] {
  const given = range as Partial<KindedTrappedRange>;
  if (given.kind !== undefined) return [range as KindedTrappedRange];
  const labelled: { span: Span; kind: TrappedKind; fileOffset?: bigint }[] = [];
  const { msix } = bar;
  if (msix?.table) labelled.push({ span: { start: msix.table.offset, end: msix.table.offset + msix.table.size }, kind: 'msix-table' });
  if (msix?.pba) labelled.push({ span: { start: msix.pba.offset, end: msix.pba.offset + msix.pba.size }, kind: 'msix-pba' });
  const out: KindedTrappedRange[] = [];
  let rest: Span[] = [{ start: range.barOffset, end: range.barOffset + range.size }];
  for (const label of labelled) {
    const next: Span[] = [];
    for (const piece of rest) {
      const start = piece.start > label.span.start ? piece.start : label.span.start;
      const end = piece.end < label.span.end ? piece.end : label.span.end;
      if (start >= end) {
        next.push(piece);
        continue;
      }
      out.push({ barOffset: start, size: end - start, reason: range.reason, kind: label.kind });
      if (piece.start < start) next.push({ start: piece.start, end: start });
      if (end < piece.end) next.push({ start: end, end: piece.end });
    }
    rest = next;
  }
  for (const piece of rest) out.push(...deviceOrPadding(bar, piece, range.reason));
  return out;
}

/** Outside the MSI-X structures, bytes below the region size are the device's (same offset), the rest padding. */
function deviceOrPadding(bar: PlannedBar, piece: Span, reason: string): KindedTrappedRange[] {
  const split = piece.end < bar.regionSize ? piece.end : bar.regionSize;
  const out: KindedTrappedRange[] = [];
  if (piece.start < split) out.push({ barOffset: piece.start, size: split - piece.start, reason, kind: 'device', fileOffset: piece.start });
  const padStart = piece.start > split ? piece.start : split;
  if (padStart < piece.end) out.push({ barOffset: padStart, size: piece.end - padStart, reason, kind: 'padding' });
  return out;
}
