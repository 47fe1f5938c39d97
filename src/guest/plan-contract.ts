/**
 * What the guest view needs from a plan: every byte of a guest BAR is either directly mapped or a trapped
 * range whose `kind` (`device`, `msix-table`, `msix-pba`, `padding`) says what backs it. The planner
 * (src/plan) gives every trapped range its kind and, for device bytes, the offset in the region.
 */
import type { DirectMapping, PlannedBar, TrapKind, TrappedRange } from '../plan/types.js';
import { byBigint } from '../util/compare.js';

/** What backs a trapped byte (the planner's {@link TrapKind}). */
export type TrappedKind = TrapKind;

/** A trapped range with its kind (every planner range has one). */
export type KindedTrappedRange = TrappedRange;

/** What backs one byte range of a guest BAR. */
export type BarPiece =
  | {
    /** First BAR offset of the piece. */ readonly start: bigint;
    /** BAR offset just past the piece. */ readonly end: bigint;
    /** A direct mapping backs it. */ readonly backing: 'mapped';
    /** The mapping. */ readonly mapping: DirectMapping;
  }
  | {
    /** First BAR offset of the piece. */ readonly start: bigint;
    /** BAR offset just past the piece. */ readonly end: bigint;
    /** A trapped range backs it. */ readonly backing: 'trapped';
    /** The range (its `kind` says how to serve it). */ readonly range: KindedTrappedRange;
  };

/** The BAR's pieces, sorted and covering [0, guestSize): direct mappings and kinded trapped ranges. */
export function barPieces(bar: PlannedBar): BarPiece[] {
  const pieces: BarPiece[] = [];
  for (const mapping of bar.mappings) pieces.push({
    start: mapping.barOffset,
    end: mapping.barOffset + mapping.size,
    backing: 'mapped',
    mapping,
  });
  for (const range of bar.trapped) pieces.push({ start: range.barOffset, end: range.barOffset + range.size, backing: 'trapped', range });
  return pieces.sort(byBigint((p) => p.start));
}
