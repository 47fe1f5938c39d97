/**
 * The trapped ranges of a guest BAR: everything the direct mappings do not cover, each piece labelled
 * with the first known cause that explains it (MSI-X, an unmappable area...) or a default reason.
 */
import type { TrappedRange } from './types.js';
import { clampSpan, mergeSpans, span, subtractSpans, type Span } from './ranges.js';

export interface LabelledSpan {
  readonly span: Span;
  readonly reason: string;
}

export function trappedRanges(guestSize: bigint, mapped: readonly Span[], labels: readonly LabelledSpan[], defaultReason: string): TrappedRange[] {
  const gaps = subtractSpans([span(0n, guestSize)], mapped);
  const pieces = gaps.flatMap((gap) => labelGap(gap, labels, defaultReason));
  return mergeSameReason(pieces.sort((a, b) => (a.barOffset < b.barOffset ? -1 : 1)));
}

function labelGap(gap: Span, labels: readonly LabelledSpan[], defaultReason: string): TrappedRange[] {
  const out: TrappedRange[] = [];
  let remaining: Span[] = [gap];
  for (const label of labels) {
    for (const piece of remaining) {
      const hit = clampSpan(piece, label.span);
      if (hit) out.push({ barOffset: hit.start, size: hit.end - hit.start, reason: label.reason });
    }
    remaining = subtractSpans(remaining, [label.span]);
  }
  for (const rest of mergeSpans(remaining)) out.push({ barOffset: rest.start, size: rest.end - rest.start, reason: defaultReason });
  return out;
}

function mergeSameReason(ranges: TrappedRange[]): TrappedRange[] {
  const merged: TrappedRange[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && last.reason === r.reason && last.barOffset + last.size === r.barOffset) {
      merged[merged.length - 1] = { ...last, size: last.size + r.size };
    } else {
      merged.push(r);
    }
  }
  return merged;
}
