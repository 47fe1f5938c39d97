/**
 * Each hostile-input defect of issue 11 (descriptions, plans, JSON readers), reproduced as it was reported:
 * every one now ends in a typed error with a stable code, in bounded time, or in a sound plan.
 */
import { describe, expect, it } from 'vitest';
import {
  PlanError, checkPlanInvariants, planBarMappings, planFromJSON, planToJSON, replan, validateDescription, validatePlan,
} from '../../src/plan/index.js';
import { nextPowerOfTwo } from '../../src/plan/page-math.js';
import { VfioDevice, VfioError, descriptionFromJSON, descriptionToJSON } from '../../src/vfio/index.js';
import { decodeConfigHeader, decodeMsix } from '../../src/vfio/config-space.js';
import type { DeviceDescription, MsixDescription, RegionDescription } from '../../src/vfio/description.js';
import type { MappingPlan } from '../../src/plan/types.js';
import { qemuE1000e, qemuNvme } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs, qemuNvmeConfigSpace } from '../vfio/fixtures.js';
import { captureError } from '../helpers/capture-error.js';
import { capturedDevices, capturedJson } from '../fixtures/devices/index.js';

const K4 = 0x1000;
const K64 = 0x1_0000;
const U64_LIMIT = 1n << 64n;

function codeOf(fn: () => unknown): string {
  const error = captureError(fn);
  if (!(error instanceof PlanError) && !(error instanceof VfioError)) throw error;
  return error.code;
}

/** qemuNvme with region `index` replaced. */
function withRegion(d: DeviceDescription, index: number, patch: Partial<Record<keyof RegionDescription, unknown>>): DeviceDescription {
  return { ...d, regions: d.regions.map((r) => (r.index === index ? ({ ...r, ...patch } as RegionDescription) : r)) };
}

function withMsix(patch: Partial<Record<'table' | 'pba', Partial<MsixDescription['table']>>> & { vectors?: number }): DeviceDescription {
  const m = qemuNvme.msix!;
  return {
    ...qemuNvme,
    msix: {
      ...m,
      ...(patch.vectors !== undefined && { vectors: patch.vectors }),
      table: { ...m.table, ...patch.table },
      pba: { ...m.pba, ...patch.pba },
    },
  };
}

function json(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe('hangs and blow-ups', () => {
  it('a region size of Infinity (or any number) is a typed error at once, not an endless power-of-two loop', () => {
    const started = performance.now();
    expect(codeOf(() => planBarMappings(withRegion(qemuNvme, 0, { size: Infinity }), { pageSize: K4 }))).toBe('BAD_DESCRIPTION');
    expect(codeOf(() => planBarMappings(withRegion(qemuNvme, 0, { size: 0x4000 }), { pageSize: K4 }))).toBe('BAD_DESCRIPTION');
    expect(codeOf(() => nextPowerOfTwo(Infinity as unknown as bigint))).toBe('VALUE_OUT_OF_RANGE');
    expect(codeOf(() => nextPowerOfTwo((1n << 64n) + 1n))).toBe('VALUE_OUT_OF_RANGE');
    expect(nextPowerOfTwo((1n << 63n) + 1n)).toBe(1n << 64n);
    expect(nextPowerOfTwo(0x4001n)).toBe(0x8000n);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('a BAR region of 2^63 + 1 or more is refused; 2^63 is planned without relocating past 2^63', () => {
    expect(codeOf(() => planBarMappings(withRegion(qemuNvme, 0, { size: (1n << 63n) + 1n }), { pageSize: K4 }))).toBe('BAR_TOO_LARGE');
    const huge = withRegion(qemuNvme, 0, { size: 1n << 63n });
    const plan = planBarMappings(huge, { pageSize: K4 });
    expect(checkPlanInvariants(plan, huge)).toEqual([]);
    expect(plan.bars[0]!.guestSize).toBe(1n << 63n);
    expect(plan.bars[0]!.msix?.relocated).toBe(false);
  });

  it('describe(): a kernel reporting num_regions or num_irqs of 0xffffffff is refused before any region ioctl', () => {
    const cases = [
      { patch: { numRegions: 0xffff_ffff }, code: 'TOO_MANY_REGIONS' },
      { patch: { numIrqs: 0xffff_ffff }, code: 'TOO_MANY_IRQS' },
    ];
    for (const { patch, code } of cases) {
      const roots = fakeSysfs('0000:00:01.0', '7');
      const kernel = new FakeKernel({
        pageSize: K64,
        device: { ...qemuNvme, ...patch },
        config: qemuNvmeConfigSpace(),
        devRoot: roots.devRoot,
      });
      using device = VfioDevice.open('0000:00:01.0', { ...roots, syscalls: kernel });
      expect(captureError(() => device.describe())).toMatchObject({ code, ioctl: 'VFIO_DEVICE_GET_INFO' });
      expect(kernel.calls.filter((c) => c.name === 'VFIO_DEVICE_GET_REGION_INFO')).toEqual([]);
    }
  });
});

describe('impossible plans are refused, by the planner and by planFromJSON', () => {
  const placed = planBarMappings(qemuNvme, { pageSize: K4, barAddresses: { 0: 0x80_0000_0000n } });
  const placedJson = planToJSON(placed) as { bars: Record<string, unknown>[] } & Record<string, unknown>;

  it('a plan listing one BAR twice', () => {
    expect(codeOf(() => planFromJSON({ ...placedJson, bars: [placedJson.bars[0], placedJson.bars[0]] }))).toBe('DUPLICATE_INDEX');
    expect(codeOf(() => validatePlan({ ...placed, bars: [placed.bars[0]!, placed.bars[0]!] }))).toBe('DUPLICATE_INDEX');
  });

  it('page size 0, 2 GiB, or not a power of two', () => {
    for (const pageSize of ['0x0', '0x80000000', '0x3000']) expect(
      codeOf(() => planFromJSON({ ...placedJson, pageSize }))
    ).toBe('BAD_PAGE_SIZE');
    for (const pageSize of [0, -4096, 4096.5, NaN, Infinity, 2 ** 31, 1n << 64n]) expect(
      codeOf(() => planBarMappings(qemuNvme, { pageSize }))
    ).toBe('BAD_PAGE_SIZE');
  });

  it('a guest BAR of 2^64 with size mask 0, or a mask that does not match the size', () => {
    const bar = placedJson.bars[0]!;
    expect(codeOf(() => planFromJSON({ ...placedJson, bars: [{ ...bar, sizeMask: '0x0' }] }))).toBe('BAD_SIZE_MASK');
    expect(codeOf(() => planFromJSON({ ...placedJson, bars: [{ ...bar, guestSize: '0x10000000000000000' }] }))).toBe('BAD_PLAN_JSON');
    expect(
      codeOf(
        () => planFromJSON({
          ...placedJson,
          bars: [{
            ...bar,
            guestSize: '0x8000000000000000',
            sizeMask: '0x8000000000000000',
            guestAddress: '0x0',
            mappings: [],
            trapped: [],
          }],
        })
      )
    ).toBe('BAD_COVERAGE');
  });

  it('placements that wrap past 2^64', () => {
    expect(codeOf(() => planBarMappings(qemuNvme, { pageSize: K4, barAddresses: { 0: U64_LIMIT - 0x1000n } }))).toBe('BAR_WRAPS');
    expect(codeOf(() => replan(placed, 0, U64_LIMIT - 0x1000n))).toBe('BAR_WRAPS');
  });

  it('32-bit BARs above 4 GiB, straddling it, or of 4 GiB', () => {
    const e1000e = (address: bigint) => planBarMappings(qemuE1000e, { pageSize: K4, barAddresses: { 0: address } });
    expect(e1000e(0xfebc_0000n).bars[0]!.is64Bit).toBe(false);
    expect(codeOf(() => e1000e(0x1_0000_0000n))).toBe('BAR_ABOVE_4G');
    expect(codeOf(() => e1000e(0xffff_f000n))).toBe('BAR_ABOVE_4G');
    expect(codeOf(() => replan(e1000e(0xfebc_0000n), 0, 0x8_0000_0000n))).toBe('BAR_ABOVE_4G');
    expect(codeOf(() => planBarMappings(withRegion(qemuE1000e, 0, { size: 1n << 32n }), { pageSize: K4 }))).toBe('BAR_TOO_LARGE');
  });

  it('BARs overlapping each other in guest space', () => {
    const addresses = { 0: 0xfebc_0000n, 1: 0xfebc_0000n };
    expect(codeOf(() => planBarMappings(qemuE1000e, { pageSize: K4, barAddresses: addresses }))).toBe('BARS_OVERLAP');
    const apart = planBarMappings(qemuE1000e, { pageSize: K4, barAddresses: { 0: 0xfeb0_0000n, 1: 0xfec0_0000n } });
    expect(codeOf(() => replan(apart, 1, 0xfeb0_0000n))).toBe('BARS_OVERLAP');
  });

  it('replan to a negative address, to 2^64, or to a number', () => {
    for (const address of [-1n, U64_LIMIT, 1.5, Number.NaN, '0x1000']) {
      expect(codeOf(() => replan(placed, 0, address as bigint))).toBe('BAD_GUEST_ADDRESS');
    }
  });

  it('planFromJSON of a plan whose mapping covers the MSI-X table, or leaves a gap', () => {
    const bar = placedJson.bars[0] as { mappings: Record<string, unknown>[]; trapped: unknown[] };
    const widened = { ...bar, mappings: [{ ...bar.mappings[0], size: '0x8000' }] };
    expect(codeOf(() => planFromJSON({ ...placedJson, bars: [widened] }))).toMatch(/MSIX_MAPPED|MAPPING_BEYOND_REGION|BAD_COVERAGE/);
    expect(codeOf(() => planFromJSON({ ...placedJson, bars: [{ ...bar, trapped: [] }] }))).toBe('BAD_COVERAGE');
  });
});

describe('MSI-X geometry: each impossible layout has its own code', () => {
  const cases: [string, DeviceDescription, string][] = [
    ['table outside its BAR', withMsix({ table: { offset: 0x3f00n } }), 'MSIX_OUTSIDE_BAR'],
    ['PBA beyond its BAR', withMsix({ pba: { offset: 0x4000n } }), 'MSIX_OUTSIDE_BAR'],
    ['table in a BAR with no region', withMsix({ table: { bir: 3 } }), 'MSIX_BAR_MISSING'],
    ['table in the upper half of a 64-bit BAR', withMsix({ table: { bir: 1 } }), 'MSIX_BAR_MISSING'],
    ['table of size 0', withMsix({ table: { size: 0n } }), 'MSIX_EMPTY'],
    ['table size not 16 bytes per vector', withMsix({ table: { size: 0x400n } }), 'MSIX_SIZE_MISMATCH'],
    ['0 vectors', withMsix({ vectors: 0 }), 'MSIX_BAD_VECTORS'],
    ['4096 vectors', withMsix({ vectors: 4096 }), 'MSIX_BAD_VECTORS'],
    ['BIR 7', withMsix({ table: { bir: 7 } }), 'MSIX_BAD_BIR'],
    ['table offset not 8-byte aligned', withMsix({ table: { offset: 0x2004n } }), 'MSIX_MISALIGNED'],
    ['table and PBA overlapping', withMsix({ pba: { offset: 0x2400n } }), 'MSIX_OVERLAP'],
  ];
  for (const [name, device, code] of cases) {
    it(`${name}: ${code}`, () => {
      expect(codeOf(() => planBarMappings(device, { pageSize: K4 }))).toBe(code);
    });
  }

  it('a table in an I/O BAR: MSIX_IN_IO_BAR (it used to be dropped silently)', () => {
    const io = { ...qemuE1000e, msix: { ...qemuE1000e.msix!, table: { ...qemuE1000e.msix!.table, bir: 2 } } };
    expect(qemuE1000e.bars.find((b) => b.index === 2)?.kind).toBe('io');
    expect(codeOf(() => planBarMappings(io, { pageSize: K4 }))).toBe('MSIX_IN_IO_BAR');
  });

  it('describe() and descriptionFromJSON agree on a reserved BIR: both refuse it', () => {
    const config = qemuNvmeConfigSpace();
    config.writeUInt32LE(0x2000 | 7, 0x44);
    const header = decodeConfigHeader(config);
    expect(captureError(() => decodeMsix(config, header.capabilities))).toMatchObject({ code: 'MSIX_BAD_BIR', region: 7 });
    const description = json(descriptionToJSON(qemuNvme)) as { msix: { table: { bir: number } } };
    description.msix.table.bir = 7;
    expect(codeOf(() => descriptionFromJSON(description))).toBe('BAD_DESCRIPTION');
    expect(codeOf(() => validateDescription(withMsix({ table: { bir: 6 } })))).toBe('MSIX_BAD_BIR');
  });
});

describe('loose readers', () => {
  const base = json(descriptionToJSON(qemuNvme)) as Record<string, unknown> & {
    bars: Record<string, unknown>[];
    regions: Record<string, unknown>[];
  };
  const read = (patch: Record<string, unknown>): string => codeOf(() => descriptionFromJSON({ ...base, ...patch }));

  it('is64Bit: "true" is an error, not false', () => {
    expect(read({ bars: [{ ...base.bars[0], is64Bit: 'true' }, ...base.bars.slice(1)] })).toBe('BAD_DESCRIPTION');
    expect(read({ bars: [{ ...base.bars[0], prefetchable: 1 }, ...base.bars.slice(1)] })).toBe('BAD_DESCRIPTION');
  });

  it('duplicate region, BAR and irq indices are refused', () => {
    expect(read({ regions: [base.regions[0], base.regions[0]] })).toBe('BAD_DESCRIPTION');
    expect(read({ bars: [base.bars[0], base.bars[0]] })).toBe('BAD_DESCRIPTION');
    expect(read({ irqs: [{ index: 0, flags: 0, count: 1 }, { index: 0, flags: 0, count: 1 }] })).toBe('BAD_DESCRIPTION');
  });

  it('unknown keys, __proto__ keys, oversize numbers and literals, wrong types', () => {
    expect(read({ extra: 1 })).toBe('BAD_DESCRIPTION');
    expect(
      codeOf(() => descriptionFromJSON(JSON.parse(`{"__proto__": {"bdf": "x"}, ${JSON.stringify(base).slice(1)}`)))
    ).toBe('BAD_DESCRIPTION');
    expect(read({ flags: 2 ** 32 })).toBe('BAD_DESCRIPTION');
    expect(read({ flags: 1e300 })).toBe('BAD_DESCRIPTION');
    expect(read({ numRegions: '9' })).toBe('BAD_DESCRIPTION');
    expect(read({ regions: [{ ...base.regions[0], size: `0x${'0'.repeat(100_000)}1` }] })).toBe('BAD_DESCRIPTION');
    expect(read({ regions: [{ ...base.regions[0], size: 16384 }] })).toBe('BAD_DESCRIPTION');
    expect(read({ bdf: 'x'.repeat(100_000) })).toBe('BAD_DESCRIPTION');
    expect(read({ regions: Array.from({ length: 100_000 }, (_, i) => ({ ...base.regions[0], index: i })) })).toBe('BAD_DESCRIPTION');
  });

  it('deep nesting is refused at the first level that is not the expected type', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(read({ regions: deep })).toBe('BAD_DESCRIPTION');
    expect(read({ bars: [deep] })).toBe('BAD_DESCRIPTION');
    expect(codeOf(() => planFromJSON({ pageSize: '0x1000', bars: deep }))).toBe('BAD_PLAN_JSON');
  });

  it('the real captures still read, plan and round-trip', () => {
    for (const [name, device] of Object.entries(capturedDevices)) {
      expect(json(descriptionToJSON(device)), name).toEqual(capturedJson[name]);
      for (const pageSize of [K4, 0x4000, K64]) {
        const plan: MappingPlan = planBarMappings(device, { pageSize });
        expect(checkPlanInvariants(plan, device), name).toEqual([]);
        expect(planFromJSON(json(planToJSON(plan)))).toEqual(plan);
      }
    }
  });
});
