/** Half-open byte ranges [start, end) and the set operations the planner needs. */

export interface Span {
  readonly start: bigint;
  readonly end: bigint;
}

export const span = (start: bigint, end: bigint): Span => ({ start, end });
export const spanLength = (s: Span): bigint => s.end - s.start;

export function overlaps(a: Span, b: Span): boolean {
  return a.start < b.end && b.start < a.end;
}

/** Sorted, non-overlapping, non-adjacent union of `spans` (empty spans dropped). */
export function mergeSpans(spans: readonly Span[]): Span[] {
  const sorted = spans.filter((s) => s.end > s.start).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const merged: Span[] = [];
  for (const s of sorted) {
    const last = merged.at(-1);
    if (last && s.start <= last.end) merged[merged.length - 1] = span(last.start, s.end > last.end ? s.end : last.end);
    else merged.push(s);
  }
  return merged;
}

/** `from` minus every span in `holes`. */
export function subtractSpans(from: readonly Span[], holes: readonly Span[]): Span[] {
  let result = mergeSpans(from);
  for (const hole of mergeSpans(holes)) {
    result = result.flatMap((s) => {
      if (!overlaps(s, hole)) return [s];
      const pieces: Span[] = [];
      if (s.start < hole.start) pieces.push(span(s.start, hole.start));
      if (hole.end < s.end) pieces.push(span(hole.end, s.end));
      return pieces;
    });
  }
  return result;
}

export function clampSpan(s: Span, limit: Span): Span | undefined {
  const start = s.start > limit.start ? s.start : limit.start;
  const end = s.end < limit.end ? s.end : limit.end;
  return end > start ? span(start, end) : undefined;
}
