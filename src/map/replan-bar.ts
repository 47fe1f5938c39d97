/**
 * Local stand-in for `replanBar` (branch plan-data adds it to src/plan/planner.ts): the single-BAR pure
 * replan the mapper's `move` calls. Same signature, so switching to the planner's is a one-line import.
 */
import { replan } from '../plan/planner.js';
import type { PlannedBar } from '../plan/types.js';

/** A warning-level placement decision about one BAR (typed; the message is for humans). */
export interface PlanWarning {
  readonly bar: number;
  readonly code: string;
  readonly message: string;
}

/** `bar` placed at `guestAddress`: only GPAs and alignment consequences change. Pure. */
export function replanBar(bar: PlannedBar, pageSize: bigint, guestAddress: bigint): { bar: PlannedBar; warnings: readonly PlanWarning[] } {
  const next = replan({ pageSize, msixStrategy: 'relocate', bars: [bar], warnings: [], skipped: [] }, bar.index, guestAddress);
  return { bar: next.bars[0]!, warnings: next.warnings.map((message) => ({ bar: bar.index, code: 'PLACEMENT', message })) };
}
