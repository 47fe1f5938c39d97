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

/**
 * `from` minus every span in `holes`: one merge-like sweep over both sorted lists, O((n + m) log(n + m))
 * for the sorts and linear after them (planning 4,093 sparse areas must not be quadratic).
 */
export function subtractSpans(from: readonly Span[], holes: readonly Span[]): Span[] {
  const cuts = mergeSpans(holes);
  const result: Span[] = [];
  let first = 0;
  for (const s of mergeSpans(from)) {
    while (first < cuts.length && cuts[first]!.end <= s.start) first++;
    let cursor = s.start;
    for (let k = first; k < cuts.length && cuts[k]!.start < s.end; k++) {
      const cut = cuts[k]!;
      if (cut.start > cursor) result.push(span(cursor, cut.start));
      if (cut.end > cursor) cursor = cut.end;
    }
    if (cursor < s.end) result.push(span(cursor, s.end));
  }
  return result;
}

export function clampSpan(s: Span, limit: Span): Span | undefined {
  const start = s.start > limit.start ? s.start : limit.start;
  const end = s.end < limit.end ? s.end : limit.end;
  return end > start ? span(start, end) : undefined;
}
