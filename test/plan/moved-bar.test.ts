/**
 * movedBar, the BAR-move hot path, copies a BAR field by field (not with a spread, slow on frozen objects):
 * the copy must keep every field and change only the guest address and the GPAs, for any planned BAR.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { movedBar, planBarMappings } from '../../src/plan/planner.js';
import { deviceArb, PAGE_SIZES } from './arbitraries.js';

/** Naturally aligned for any BAR the arbitrary devices have (BARs stay below 64 MiB there). */
const aligned = (index: number): bigint => BigInt(index + 1) << 26n;
const STRATEGY = fc.constantFrom('relocate' as const, 'hole' as const);

it('movedBar equals the spread it replaces: same keys, only guestAddress and the GPAs changed', () => {
  let withMsix = 0;
  fc.assert(
    fc.property(deviceArb, fc.constantFrom(...PAGE_SIZES), STRATEGY, (device, pageSize, msix) => {
      const indices = planBarMappings(device, { pageSize, msix }).bars.map((b) => b.index);
      const plan = planBarMappings(device, { pageSize, msix, barAddresses: new Map(indices.map((i) => [i, aligned(i)])) });
      for (const bar of plan.bars) {
        const target = aligned(bar.index + 8);
        const moved = movedBar(bar, target);
        if (moved === undefined) continue;
        const spread = { ...bar, guestAddress: target, mappings: bar.mappings.map((m) => ({ ...m, gpa: target + m.barOffset })) };
        expect(moved).toStrictEqual(spread);
        expect(Object.keys(moved).sort()).toEqual(Object.keys(bar).sort());
        if (bar.msix !== undefined) withMsix++;
      }
    }),
    { numRuns: 200 },
  );
  expect(withMsix).toBeGreaterThan(0);
});

it('a frozen BAR moves to a frozen BAR; an unfrozen one to an unfrozen one', () => {
  const device = fc.sample(deviceArb, { numRuns: 1, seed: 7 })[0]!;
  const indices = planBarMappings(device, { pageSize: 0x1000n }).bars.map((b) => b.index);
  const plan = planBarMappings(device, { pageSize: 0x1000n, barAddresses: new Map(indices.map((i) => [i, aligned(i)])) });
  const bar = plan.bars.find((b) => b.mappings.length > 0)!;
  const frozen = movedBar(bar, aligned(bar.index + 8))!;
  expect([frozen, frozen.mappings, frozen.mappings[0]].every((o) => Object.isFrozen(o))).toBe(true);
  const open = movedBar(structuredClone(bar), aligned(bar.index + 8))!;
  expect([open, open.mappings, open.mappings[0]].some((o) => Object.isFrozen(o))).toBe(false);
});
