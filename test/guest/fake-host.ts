/** A GuestBarHost over a plan (what BarMapper provides), recording moves and decode changes. */
import { replan } from '../../src/plan/index.js';
import type { MappingPlan, PlannedBar } from '../../src/plan/types.js';
import type { GuestBarHost } from '../../src/guest/index.js';

export class FakeBarHost implements GuestBarHost {
  readonly moves: [number, bigint][] = [];
  readonly decode: [number, boolean][] = [];
  plan: MappingPlan;

  constructor(plan: MappingPlan) {
    this.plan = plan;
  }

  plannedBar(index: number): PlannedBar | undefined {
    return this.plan.bars.find((b) => b.index === index);
  }

  move(index: number, guestAddress: bigint): void {
    this.plan = replan(this.plan, index, guestAddress);
    this.moves.push([index, guestAddress]);
  }

  setDecode(index: number, enabled: boolean): void {
    this.decode.push([index, enabled]);
  }
}
