/**
 * `map` checks a deeply frozen plan once and keeps it without copying (src/map/arguments.ts checkPlan):
 * what is cached must be exactly what cannot change. Unfrozen plans, frozen plans with unfrozen parts and
 * frozen plans with getters are checked (and copied) on every call, so a plan changed between two maps is
 * judged as it is now.
 */
import { describe, expect, it } from 'vitest';
import { BarMapper, MapError } from '../../src/map/index.js';
import { isFrozenPlainData } from '../../src/map/frozen-data.js';
import { KvmVm } from '../../src/kvm/index.js';
import { VfioDevice } from '../../src/vfio/index.js';
import { planBarMappings, planFromJSON, planToJSON, replan, type MappingPlan } from '../../src/plan/index.js';
import { qemuE1000e } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs } from '../vfio/fixtures.js';
import { captureError } from '../helpers/capture-error.js';

const BDF = qemuE1000e.bdf;
const ADDRESSES = { 0: 0x1000_0000n, 1: 0x1010_0000n, 3: 0x1020_0000n };
const NOTHING = { fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 };
const ROOTS = fakeSysfs(BDF, '3');
/** A GPA that is not BAR0's base plus the mapping's offset: validatePlan's BAD_GPA. */
const WRONG_GPA = 0x3000_0000n;

function world(): { kernel: FakeKernel; mapper: BarMapper; plan: MappingPlan; close(): void } {
  const kernel = new FakeKernel({ pageSize: 0x1000, device: qemuE1000e, devRoot: ROOTS.devRoot, group: '3' });
  const device = VfioDevice.open(BDF, { ...ROOTS, syscalls: kernel, iommu: 'type1' });
  const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${ROOTS.devRoot}/kvm` });
  const mapper = new BarMapper(device, vm);
  const plan = planBarMappings(qemuE1000e, { pageSize: 0x1000n, barAddresses: ADDRESSES });
  return {
    kernel, mapper, plan,
    close: () => {
      mapper[Symbol.dispose]();
      vm.close();
      device.close();
    },
  };
}

/** An unfrozen deep copy (structuredClone drops frozenness) whose BAR0 mappings can be rewritten. */
function mutableCopy(plan: MappingPlan): { bars: { mappings: { gpa: bigint }[] }[] } {
  return structuredClone(plan) as unknown as { bars: { mappings: { gpa: bigint }[] }[] };
}

const mapError = (fn: () => unknown): MapError => {
  const error = captureError(fn);
  expect(error).toBeInstanceOf(MapError);
  return error as MapError;
};

describe('the planner returns immutable plans', () => {
  it('planBarMappings, planFromJSON and replan of a frozen plan are frozen plain data all the way down', () => {
    const plan = planBarMappings(qemuE1000e, { pageSize: 0x1000n, barAddresses: ADDRESSES });
    expect(isFrozenPlainData(plan)).toBe(true);
    expect(isFrozenPlainData(planFromJSON(JSON.parse(JSON.stringify(planToJSON(plan))) as unknown))).toBe(true);
    expect(isFrozenPlainData(replan(plan, 0, 0x2000_0000n))).toBe(true);
  });

  it('replan of an unfrozen plan freezes nothing of the caller', () => {
    const mine = mutableCopy(planBarMappings(qemuE1000e, { pageSize: 0x1000n, barAddresses: ADDRESSES }));
    replan(mine as unknown as MappingPlan, 0, 0x2000_0000n);
    expect(Object.isFrozen(mine) || Object.isFrozen(mine.bars[1])).toBe(false);
  });
});

describe('isFrozenPlainData', () => {
  it('refuses anything that could answer differently later', () => {
    const frozen = <T extends object>(value: T): T => Object.freeze(value);
    class Box { readonly x = 1n; }
    const getter = frozen(Object.defineProperty({}, 'gpa', { get: () => 0n, enumerable: true }));
    expect(isFrozenPlainData(frozen({ a: 1n, b: frozen(['x']), c: undefined, d: null }))).toBe(true);
    expect(isFrozenPlainData({ a: 1n })).toBe(false);
    expect(isFrozenPlainData(frozen({ a: { b: 1n } }))).toBe(false);
    expect(isFrozenPlainData(getter)).toBe(false);
    expect(isFrozenPlainData(frozen(new Box()))).toBe(false);
    expect(isFrozenPlainData(frozen(new Proxy(frozen({ a: 1n }), {})))).toBe(false);
    expect(isFrozenPlainData(frozen({ f: () => 0 }))).toBe(false);
    expect(isFrozenPlainData(frozen({ [Symbol('s')]: 1 }))).toBe(false);
  });
});

describe('BarMapper.map checks a frozen plan once', () => {
  it('keeps the planner\'s frozen BARs as they are, across map / unmapAll / map', () => {
    const w = world();
    for (let round = 0; round < 3; round++) {
      w.mapper.map(w.plan);
      expect(w.mapper.plannedBar(0)).toBe(w.plan.bars[0]);
      w.mapper.unmapAll();
    }
    w.close();
    expect(w.kernel.live()).toEqual(NOTHING);
  });

  it('an unfrozen plan is checked again on every call: made unsound after a first map, it is refused', () => {
    const w = world();
    const plan = mutableCopy(w.plan);
    w.mapper.map(plan as unknown as MappingPlan);
    expect(w.mapper.plannedBar(0)).not.toBe(plan.bars[0]);
    w.mapper.unmapAll();
    plan.bars[0]!.mappings[0]!.gpa = WRONG_GPA;
    const before = w.kernel.calls.length;
    expect(mapError(() => w.mapper.map(plan as unknown as MappingPlan))).toMatchObject({ code: 'BAD_PLAN', bar: 0 });
    expect(w.kernel.calls.length).toBe(before);
    w.close();
    expect(w.kernel.live()).toEqual(NOTHING);
  });

  it('a frozen plan with an unfrozen BAR is not cached: the BAR changed after a first map is refused', () => {
    const w = world();
    const copy = mutableCopy(w.plan);
    const plan = Object.freeze({ ...copy, bars: Object.freeze(copy.bars) });
    w.mapper.map(plan as unknown as MappingPlan);
    w.mapper.unmapAll();
    copy.bars[0]!.mappings[0]!.gpa = WRONG_GPA;
    expect(mapError(() => w.mapper.map(plan as unknown as MappingPlan)).code).toBe('BAD_PLAN');
    w.close();
    expect(w.kernel.live()).toEqual(NOTHING);
  });

  it('a frozen plan whose GPA is a getter is read afresh on every call (and copied, never kept)', () => {
    const w = world();
    const copy = mutableCopy(w.plan);
    const mapping = copy.bars[0]!.mappings[0]!;
    let gpa = mapping.gpa;
    Object.defineProperty(mapping, 'gpa', { get: () => gpa, enumerable: true });
    const plan = deepFreezeAll(copy);
    w.mapper.map(plan as unknown as MappingPlan);
    expect(w.mapper.plannedBar(0)).not.toBe(plan.bars[0]);
    w.mapper.unmapAll();
    gpa = WRONG_GPA;
    expect(mapError(() => w.mapper.map(plan as unknown as MappingPlan)).code).toBe('BAD_PLAN');
    w.close();
    expect(w.kernel.live()).toEqual(NOTHING);
  });
});

function deepFreezeAll<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  for (const key of Object.keys(value)) {
    const property = Object.getOwnPropertyDescriptor(value, key)!;
    if ('value' in property) deepFreezeAll(property.value);
  }
  return Object.freeze(value);
}
