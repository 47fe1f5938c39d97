/**
 * The trapped ranges of a guest BAR: everything the direct mappings do not cover, each piece labelled
 * with the first known cause that explains it (MSI-X, an unmappable area...) or a default reason.
 */
import type { TrappedRange } from './types.js';
import { span, subtractSpans, type Span } from './ranges.js';
import { firstLabelRuns } from './label-runs.js';

export interface LabelledSpan {
  readonly span: Span;
  readonly reason: string;
}

export function trappedRanges(guestSize: bigint, mapped: readonly Span[], labels: readonly LabelledSpan[], defaultReason: string): TrappedRange[] {
  const gaps = subtractSpans([span(0n, guestSize)], mapped);
  const pieces = firstLabelRuns(gaps, labels.map((l) => l.span)).map((run): TrappedRange => ({
    barOffset: run.span.start,
    size: run.span.end - run.span.start,
    reason: run.label >= 0 ? labels[run.label]!.reason : defaultReason,
  }));
  return mergeSameReason(pieces);
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
