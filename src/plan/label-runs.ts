/**
 * Labelling gaps by the first label that covers each byte, in one sweep: O((gaps + labels) log labels).
 * Used for trapped ranges, where a BAR with thousands of sparse areas has thousands of gaps and labels;
 * testing every label against every gap was quadratic (seconds for 4,093 areas).
 */
import { span, type Span } from './ranges.js';

/** A maximal piece of one gap whose bytes all have the same first covering label (-1: no label covers it). */
export interface LabelRun {
  readonly span: Span;
  /** Index into the labels given to `firstLabelRuns`, or -1. */
  readonly label: number;
}

interface LabelEvent {
  readonly at: bigint;
  readonly label: number;
  readonly opens: boolean;
}

/**
 * Splits each gap (sorted, disjoint) into runs labelled with the lowest-index label span that covers them.
 * Label spans may overlap each other and the gaps in any way; empty ones are ignored.
 */
export function firstLabelRuns(gaps: readonly Span[], labels: readonly Span[]): LabelRun[] {
  const events = labelEvents(labels);
  const active = new ActiveLabels(labels.length);
  const runs: LabelRun[] = [];
  let next = 0;
  const applyUpTo = (at: bigint): void => {
    for (; next < events.length && events[next]!.at <= at; next++) active.apply(events[next]!);
  };
  for (const gap of gaps) {
    applyUpTo(gap.start);
    let cursor = gap.start;
    while (next < events.length && events[next]!.at < gap.end) {
      const at = events[next]!.at;
      pushRun(runs, span(cursor, at), active.first());
      applyUpTo(at);
      cursor = at;
    }
    pushRun(runs, span(cursor, gap.end), active.first());
  }
  return runs;
}

function labelEvents(labels: readonly Span[]): LabelEvent[] {
  const events: LabelEvent[] = [];
  labels.forEach((s, label) => {
    if (s.end <= s.start) return;
    events.push({ at: s.start, label, opens: true }, { at: s.end, label, opens: false });
  });
  return events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

/** Appends a run, extending the previous one when it is adjacent and has the same label. Empty runs vanish. */
function pushRun(runs: LabelRun[], piece: Span, label: number): void {
  if (piece.end <= piece.start) return;
  const last = runs.at(-1);
  if (last && last.label === label && last.span.end === piece.start) {
    runs[runs.length - 1] = { span: span(last.span.start, piece.end), label };
  } else {
    runs.push({ span: piece, label });
  }
}

/** The set of open labels with its minimum: a binary min-heap with lazy deletion (each label opens once). */
class ActiveLabels {
  private readonly heap: number[] = [];
  private readonly open: boolean[];

  constructor(count: number) {
    this.open = new Array<boolean>(count).fill(false);
  }

  apply(event: LabelEvent): void {
    this.open[event.label] = event.opens;
    if (event.opens) this.push(event.label);
  }

  /** Lowest open label, or -1. */
  first(): number {
    while (this.heap.length > 0 && !this.open[this.heap[0]!]) this.pop();
    return this.heap.length > 0 ? this.heap[0]! : -1;
  }

  private push(value: number): void {
    const heap = this.heap;
    heap.push(value);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= heap[i]!) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && heap[left]! < heap[smallest]!) smallest = left;
      if (right < heap.length && heap[right]! < heap[smallest]!) smallest = right;
      if (smallest === i) return;
      [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
      i = smallest;
    }
  }
}
