/**
 * Hostile input to the readers and the planner (issue 11): random JSON, mutated real captures and plans,
 * wrong types, huge numbers, `__proto__` keys, deep nesting, impossible MSI-X geometry, and page sizes and
 * placements at the edges. The one allowed outcome besides success is a typed VfioBarsError; every plan
 * that comes out passes checkPlanInvariants (representability included). Budgets fit CI (a few seconds each).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VfioBarsError } from '../../src/errors.js';
import { checkPlanInvariants, planBarMappings, planFromJSON, planToJSON, planViolations, replan } from '../../src/plan/index.js';
import { descriptionFromJSON, descriptionToJSON } from '../../src/vfio/index.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import type { MappingPlan, PlanOptions } from '../../src/plan/types.js';
import { qemuE1000e, qemuNvme, qemuNvme64kBar, qemuNvmeUnaligned } from '../helpers/profiles.js';
import { capturedDevices, capturedJson } from '../fixtures/devices/index.js';

const U64_MAX = (1n << 64n) - 1n;
const DEVICES: readonly DeviceDescription[] = [...Object.values(capturedDevices), qemuNvme, qemuNvme64kBar, qemuNvmeUnaligned, qemuE1000e];
const asJson = (d: DeviceDescription): unknown => JSON.parse(JSON.stringify(descriptionToJSON(d)));
const DEVICE_JSON: readonly unknown[] = [...Object.values(capturedJson), ...[qemuNvme, qemuE1000e].map(asJson)];

/** Runs `fn`; a throw must be one of the library's typed errors. Returns the value or undefined. */
function typedOrValue<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    if (!(error instanceof VfioBarsError)) throw error;
    expect(error.code).toMatch(/^[A-Z][A-Z0-9_]+$/);
    return undefined;
  }
}

/** `depth` levels of arrays and objects; fast-check prints it by name (printing it whole overflows the stack). */
function nest(depth: number): unknown {
  let value: object = [0];
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { bars: value };
  Object.defineProperty(value, fc.toStringMethod, { value: () => `nest(${depth})`, enumerable: false });
  return value;
}

/** JSON values a hostile or careless file holds where a field should be. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null, true, false, 0, -0, -1, 1.5, 5, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, '', 'true', 'false', '0x', '-0x1', '0x1g', '0x0', '0x1000',
    '0xffffffffffffffff', '0x10000000000000000', '18446744073709551616', `0x${'0'.repeat(64)}1`, '__proto__', 'constructor',
    'relocate', 'hole', 'read', 'read-write', 'memory', 'io', 'upper-half', 'sparse-mmap', 'msix-mappable', [], {}, [[]], { __proto__: null },
  ),
  fc.integer({ min: -10, max: 70 }),
  fc.bigInt({ min: 0n, max: U64_MAX }).map((v) => `0x${v.toString(16)}`),
  fc.jsonValue({ maxDepth: 2 }),
  fc.integer({ min: 50, max: 3000 }).map(nest),
);

type Container = Record<string, unknown> | unknown[];

/** Every (container, key) slot of a JSON-like tree, depth-first. */
function slots(root: unknown): [Container, string | number][] {
  const out: [Container, string | number][] = [];
  const visit = (node: unknown, depth: number): void => {
    if (depth > 12 || typeof node !== 'object' || node === null) return;
    const container = node as Container;
    for (const key of Object.keys(container)) {
      const k = Array.isArray(container) ? Number(key) : key;
      out.push([container, k]);
      visit((container as Record<string, unknown>)[key], depth + 1);
    }
  };
  visit(root, 0);
  return out;
}

interface Mutation {
  readonly at: number;
  readonly op: 'replace' | 'delete' | 'duplicate' | 'add-key' | 'proto-key' | 'wrap';
  readonly value: unknown;
  readonly key: string;
}

const mutationArb = (values: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> =>
  fc.record({
    at: fc.nat(),
    op: fc.constantFrom('replace', 'replace', 'replace', 'delete', 'duplicate', 'add-key', 'proto-key', 'wrap'),
    value: values,
    key: fc.constantFrom('extra', 'index', 'size', 'bir', 'is64Bit', 'gpa', 'constructor'),
  });

/** Applies mutations to a deep copy of `root` (structuredClone keeps bigints for TS-level inputs). */
function mutate(root: unknown, mutations: readonly Mutation[]): unknown {
  const copy = structuredClone(root);
  for (const m of mutations) {
    const all = slots(copy);
    if (all.length === 0) break;
    const [container, key] = all[m.at % all.length]!;
    const record = container as Record<string | number, unknown>;
    switch (m.op) {
      case 'replace': record[key] = m.value; break;
      case 'delete': if (Array.isArray(container)) container.splice(Number(key), 1); else delete record[key]; break;
      case 'duplicate': // a shared reference: the readers never mutate their input
        if (Array.isArray(container)) container.push(container[Number(key)]);
        break;
      case 'add-key': if (!Array.isArray(container)) record[m.key] = m.value; break;
      case 'proto-key': // an own `__proto__` key, as JSON.parse makes it
        if (!Array.isArray(container)) Object.defineProperty(container, '__proto__', { value: m.value, enumerable: true, configurable: true, writable: true });
        break;
      case 'wrap': record[key] = [record[key]]; break;
    }
  }
  return copy;
}

const PAGE_EDGES = [0, 1, 4095, 4096, 0x4000, 0x1_0000, 2 ** 30, 2 ** 31, -4096, 4096.5, NaN, Infinity, 0n, 0x1000n, 1n << 30n, 1n << 64n];
const pageArb = fc.oneof(
  { arbitrary: fc.constantFrom(0x1000, 0x4000, 0x1_0000), weight: 4 },
  { arbitrary: fc.constantFrom<number | bigint>(...PAGE_EDGES), weight: 1 },
);
const addressEdges = [
  0n, 0x1000n, 0x8000n, 0xc000_0000n, 0xfebc_0000n, 0xffff_f000n, 0xffff_ffffn, 1n << 32n, 0x80_0000_0000n, 1n << 63n, U64_MAX - 0xffffn, U64_MAX,
];
const legalSlots = fc.constantFrom(0x8000_0000n, 0x9000_0000n, 0xa000_0000n, 0xc000_0000n, 0x10_0000_0000n, 0x20_0000_0000n);
const addressArb = fc.oneof(
  { arbitrary: legalSlots, weight: 3 },
  fc.constantFrom(...addressEdges),
  fc.bigInt({ min: 0n, max: U64_MAX }),
  fc.bigInt({ min: 0n, max: 1n << 32n }).map((a) => a & ~0xfffn),
);
const addressesArb = fc
  .dictionary(fc.constantFrom('0', '1', '2', '3', '4', '5'), addressArb, { maxKeys: 3 })
  .map((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [Number(k), v])) as Record<number, bigint>);
const optionsArb: fc.Arbitrary<PlanOptions> = fc.record(
  { pageSize: pageArb, msix: fc.constantFrom('relocate' as const, 'hole' as const), barAddresses: fc.option(addressesArb, { nil: undefined, freq: 2 }) },
  { requiredKeys: ['pageSize', 'msix'] },
);

/** How many planning attempts produced a plan: the fuzz must exercise sound plans, not only refusals. */
const stats = { planned: 0, tried: 0 };
function expectSomePlans(share: number): void {
  expect(stats.planned).toBeGreaterThan(stats.tried * share);
  stats.planned = 0;
  stats.tried = 0;
}
/** Plans, and checks what comes out: a sound plan that survives JSON and edge-address moves, or a typed error. */
function planAndCheck(device: DeviceDescription, options: PlanOptions, moves: readonly bigint[]): void {
  const plan = typedOrValue(() => planBarMappings(device, options));
  stats.planned += plan ? 1 : 0;
  stats.tried += 1;
  if (!plan) return;
  expect(checkPlanInvariants(plan, device)).toEqual([]);
  expect(planFromJSON(JSON.parse(JSON.stringify(planToJSON(plan))))).toEqual(plan);
  plan.bars.forEach((bar, i) => {
    const moved = typedOrValue(() => replan(plan, bar.index, moves[i % Math.max(1, moves.length)] ?? 0n));
    if (moved) expect(checkPlanInvariants(moved, device)).toEqual([]);
  });
}

describe('hostile JSON to the readers', () => {
  it('random JSON: a typed error or a description/plan, never anything else', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), hostileJson, (random, hostile) => {
        for (const input of [random, hostile, { regions: random, bars: hostile }, { pageSize: '0x1000', bars: [random] }]) {
          typedOrValue(() => descriptionFromJSON(input));
          typedOrValue(() => planFromJSON(input));
        }
      }),
      { numRuns: 400 },
    );
  });

  it('mutated real captures: descriptionFromJSON gives a typed error or a description the planner handles', () => {
    fc.assert(
      fc.property(fc.constantFrom(...DEVICE_JSON), fc.array(mutationArb(hostileJson), { minLength: 1, maxLength: 3 }), pageArb, (json, mutations, pageSize) => {
        const device = typedOrValue(() => descriptionFromJSON(mutate(json, mutations)));
        if (device) planAndCheck(device, { pageSize }, [0x80_0000_0000n]);
      }),
      { numRuns: 600 },
    );
  });

  it('mutated plans: planFromJSON gives a typed error or a plan with no violation', () => {
    const plans = DEVICES.flatMap((device) => [0x1000, 0x1_0000].map((pageSize) => {
      const first = planBarMappings(device, { pageSize }).bars[0]!;
      return planToJSON(planBarMappings(device, { pageSize, barAddresses: { [first.index]: 0xc000_0000n } }));
    }));
    fc.assert(
      fc.property(fc.constantFrom(...plans), fc.array(mutationArb(hostileJson), { minLength: 1, maxLength: 3 }), (json, mutations) => {
        const plan = typedOrValue(() => planFromJSON(mutate(json, mutations)));
        if (!plan) return;
        expect(planViolations(plan)).toEqual([]);
        expect(planFromJSON(JSON.parse(JSON.stringify(planToJSON(plan))))).toEqual(plan);
      }),
      { numRuns: 600 },
    );
  });
});

/** Values a careless TypeScript caller can put where the types say bigint, number, boolean or string. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    Infinity, -Infinity, NaN, -1, 0, 1.5, 2 ** 53, 1e300, -1n, 0n, 1n, 7n, 0x1000n, 0x4000n, (1n << 31n) + 1n, 1n << 32n, (1n << 63n) + 1n, 1n << 63n,
    U64_MAX, 1n << 64n, undefined, null, '0x1000', 'true', true, false, [], {}, 6, 7, 4096, 2048, 2049,
  ),
  fc.bigInt({ min: 0n, max: 1n << 24n }),
  fc.integer({ min: -2, max: 9 }),
);

/** Structurally plausible devices with random geometry: sizes, MSI-X placement and BAR kinds at the edges. */
const sizeEdge = fc.oneof(
  fc.constantFrom(0n, 8n, 0x80n, 0x1000n, 0x1800n, 0x4000n, 0x1_0000n, 1n << 31n, (1n << 31n) + 0x1000n, 1n << 32n, 1n << 62n, 1n << 63n),
  fc.bigInt({ min: 1n, max: 1n << 24n }),
);
const geometryArb: fc.Arbitrary<DeviceDescription> = fc
  .record({
    sizes: fc.array(sizeEdge, { minLength: 6, maxLength: 6 }),
    flags: fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 6, maxLength: 6 }),
    kinds: fc.array(fc.constantFrom('memory32', 'memory64', 'io', 'unused'), { minLength: 6, maxLength: 6 }),
    sparse: fc.array(fc.record({ bar: fc.integer({ min: 0, max: 5 }), offset: sizeEdge, size: sizeEdge }), { maxLength: 4 }),
    vectors: fc.oneof(fc.integer({ min: 1, max: 2048 }), fc.constantFrom(0, 2049)),
    tableBir: fc.integer({ min: 0, max: 7 }),
    pbaBir: fc.integer({ min: 0, max: 7 }),
    tableOffset: fc.oneof(sizeEdge, fc.bigInt({ min: 0n, max: 0x1_0000n }).map((v) => v & ~7n)),
    pbaOffset: fc.oneof(sizeEdge, fc.bigInt({ min: 0n, max: 0x1_0000n }).map((v) => v & ~7n)),
    hasMsix: fc.boolean(),
  })
  .map((g): DeviceDescription => {
    const bars: DeviceDescription['bars'][number][] = [];
    for (let index = 0; index < 6; index++) {
      const previous = bars[index - 1];
      const wanted = g.kinds[index]!;
      const kind = previous?.kind === 'memory' && previous.is64Bit ? 'upper-half' : wanted === 'io' || wanted === 'unused' ? wanted : 'memory';
      const is64Bit = kind === 'upper-half' || (wanted === 'memory64' && index < 5);
      bars.push({ index, kind, is64Bit, prefetchable: false, address: 0n });
    }
    const regions = g.sizes.map((size, index) => {
      const areas = g.sparse.filter((s) => s.bar === index).map((s) => ({ offset: s.offset, size: s.size }));
      const capabilities = areas.length > 0 ? [{ kind: 'sparse-mmap' as const, id: 1 as const, version: 1, areas }] : [];
      return { index, flags: g.flags[index]!, size, offset: BigInt(index) << 40n, capabilities };
    });
    const tableSize = BigInt(g.vectors) * 16n;
    const pbaSize = BigInt(Math.ceil(g.vectors / 64)) * 8n;
    return {
      bdf: '0000:00:01.0', flags: 3, numRegions: 9, numIrqs: 0, regions, irqs: [], bars,
      ...(g.hasMsix && {
        msix: {
          capOffset: 0x40, vectors: g.vectors,
          table: { bir: g.tableBir, offset: g.tableOffset, size: tableSize }, pba: { bir: g.pbaBir, offset: g.pbaOffset, size: pbaSize },
        },
      }),
    };
  });

describe('hostile descriptions and options to the planner', () => {
  it('random geometry (impossible MSI-X, oversize and sub-page BARs, wrapping areas) at edge page sizes and placements', () => {
    fc.assert(
      fc.property(geometryArb, optionsArb, fc.array(addressArb, { maxLength: 6 }), (device, options, moves) => planAndCheck(device, options, moves)),
      { numRuns: 1500 },
    );
    expectSomePlans(0.05);
  });

  it('real devices with fields replaced by non-finite, oversize and wrongly typed values', () => {
    const mutationsArb = fc.array(mutationArb(hostileValue), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(fc.constantFrom(...DEVICES), mutationsArb, optionsArb, fc.array(addressArb, { maxLength: 6 }), (base, mutations, options, moves) => {
        planAndCheck(mutate(base, mutations) as DeviceDescription, options, moves);
      }),
      { numRuns: 1500 },
    );
    expectSomePlans(0.05);
  });

  it('hostile options: every field wrong in turn', () => {
    fc.assert(
      fc.property(fc.constantFrom(...DEVICES), hostileValue, hostileValue, hostileValue, (device, pageSize, msix, barAddresses) => {
        for (const options of [{ pageSize }, { pageSize: 0x1000, msix }, { pageSize: 0x1000, barAddresses }, pageSize, undefined, null]) {
          planAndCheck(device, options as PlanOptions, []);
        }
        const plan: MappingPlan = planBarMappings(device, { pageSize: 0x1000 });
        for (const bar of plan.bars) typedOrValue(() => replan(plan, bar.index, pageSize as bigint));
        typedOrValue(() => replan(plan, msix as number, 0n));
      }),
      { numRuns: 300 },
    );
  });
});
