import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MmioDispatcher, barPieces, compileBar, type MsixAccess } from '../../src/guest/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import type { MappingPlan } from '../../src/plan/types.js';
import { RegionAccess } from '../../src/vfio/region-access.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { qemuE1000e, qemuNvme } from '../helpers/profiles.js';
import { qemuNvmeConfigSpace } from '../vfio/fixtures.js';
import { FakeBarHost } from './fake-host.js';
import { fakeDevice } from './fake-device.js';
import { deviceArb } from './device-arb.js';

const GPA = 0x80_0000_0000n;
const pattern = (i: number): number => (i * 7 + 3) & 0xff;

class RecordingMsix implements MsixAccess {
  readonly calls: string[] = [];
  tableRead(offset: number, data: Uint8Array): void {
    this.calls.push(`table-read ${offset.toString(16)}+${data.length}`);
    data.fill(0xaa);
  }
  tableWrite(offset: number, data: Uint8Array): void {
    this.calls.push(`table-write ${offset.toString(16)}+${data.length}`);
  }
  pbaRead(offset: number, data: Uint8Array): void {
    this.calls.push(`pba-read ${offset.toString(16)}+${data.length}`);
    data.fill(0x55);
  }
}

function setup(description: DeviceDescription, plan: MappingPlan) {
  const { kernel, handle } = fakeDevice(description, qemuNvmeConfigSpace(), Number(plan.pageSize));
  for (const bar of plan.bars) {
    const bytes = kernel.regions.bytes(bar.index);
    for (let i = 0; i < bytes.length; i++) bytes[i] = pattern(i);
  }
  const host = new FakeBarHost(plan);
  const msix = new RecordingMsix();
  const dispatcher = new MmioDispatcher(host, new RegionAccess(handle), msix, plan.bars.map((b) => b.index), description.bdf);
  return { kernel, handle, host, msix, dispatcher };
}

const read = (d: MmioDispatcher, gpa: bigint, size: number): { ours: boolean; bytes: number[] } => {
  const data = new Uint8Array(size);
  const ours = d.handleMmio(gpa, data, false);
  return { ours, bytes: [...data] };
};

describe('MmioDispatcher', () => {
  it("routes a relocated NVMe BAR0 (64 KiB pages): table, PBA, padding above, device below; follows moves and decode", () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1_0000, barAddresses: { 0: GPA } });
    expect(plan.bars[0]!.msix).toMatchObject({ relocated: true, table: { offset: 0x1_0000n }, pba: { offset: 0x1_1000n } });
    const { kernel, host, msix, dispatcher } = setup(qemuNvme, plan);
    expect(dispatcher.handleMmio(GPA + 0x1_0000n, new Uint8Array(4), true)).toBe(true);
    expect(read(dispatcher, GPA + 0x1_0018n, 8)).toEqual({ ours: true, bytes: Array(8).fill(0xaa) });
    expect(read(dispatcher, GPA + 0x1_1008n, 8)).toEqual({ ours: true, bytes: Array(8).fill(0x55) });
    expect(msix.calls).toEqual(['table-write 0+4', 'table-read 18+8', 'pba-read 8+8']);
    expect(read(dispatcher, GPA + 0x1_1010n, 4)).toEqual({ ours: true, bytes: [0, 0, 0, 0] }); // padding
    expect(dispatcher.handleMmio(GPA + 0x1_f000n, new Uint8Array([1, 2, 3, 4]), true)).toBe(true); // dropped
    // The directly mapped half only exits when KVM has no slot (decode just re-enabled, a move racing): device bytes.
    expect(read(dispatcher, GPA + 0x8n, 4)).toEqual({ ours: true, bytes: [8, 9, 10, 11].map(pattern) });
    expect(read(dispatcher, GPA + 0x2_0000n, 4).ours).toBe(false);
    expect(() => dispatcher.handleMmio(GPA, new Uint8Array(0), false)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => dispatcher.handleMmio(GPA, new Uint8Array(16), false)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(
      () => dispatcher.handleMmio(Number(GPA) as unknown as bigint, new Uint8Array(4), false)
    ).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(read(dispatcher, GPA - 1n, 1).ours).toBe(false);

    host.move(0, 0x90_0000_0000n);
    dispatcher.refresh();
    expect(read(dispatcher, GPA + 0x1_1010n, 4).ours).toBe(false);
    expect(read(dispatcher, 0x90_0000_0000n + 0x1_1008n, 8).bytes).toEqual(Array(8).fill(0x55));
    dispatcher.setDecode(0, false);
    expect(read(dispatcher, 0x90_0000_0000n + 0x1_1008n, 8).ours).toBe(false);
    expect(kernel.calls.filter((c) => c.name === 'pread')).toHaveLength(1);
  });

  it("routes 'hole' mode (4 KiB pages): registers sharing the MSI-X pages go to the device at their offset", () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1000, barAddresses: { 0: GPA }, msix: 'hole' });
    const { kernel, handle, msix, dispatcher } = setup(qemuNvme, plan);
    expect(read(dispatcher, GPA + 0x2410n, 4).bytes).toEqual([0x2410, 0x2411, 0x2412, 0x2413].map(pattern));
    expect(read(dispatcher, GPA + 0x3010n, 2).bytes).toEqual([0x3010, 0x3011].map(pattern));
    expect(dispatcher.handleMmio(GPA + 0x2ffcn, Uint8Array.of(1, 2, 3, 4), true)).toBe(true);
    expect([...kernel.regions.bytes(0).subarray(0x2ffc, 0x3000)]).toEqual([1, 2, 3, 4]);
    expect(kernel.calls.filter((c) => c.name === 'pwrite').map((c) => c.detail)).toEqual([`${handle.fd}@2ffc`]);
    expect(read(dispatcher, GPA + 0x2400n, 8).bytes).toEqual(Array(8).fill(0xaa));
    // An 8-byte read straddling the table's end: 4 bytes from the table, 4 from the device.
    expect(read(dispatcher, GPA + 0x240cn, 8).bytes).toEqual([0xaa, 0xaa, 0xaa, 0xaa, ...[0x2410, 0x2411, 0x2412, 0x2413].map(pattern)]);
    expect(msix.calls).toEqual(['table-read 400+8', 'table-read 40c+4']);
    // A failing or short device access is a typed error naming the device and region.
    kernel.failWhen((c) => c.name === 'pread', 5 /* EIO */, true);
    expect(() => read(dispatcher, GPA + 0x2410n, 4)).toThrow(expect.objectContaining({ code: 'EIO', region: 0, bdf: qemuNvme.bdf }));
    kernel.failWhen((c) => c.name === 'pwrite', 19 /* ENODEV */, true);
    expect(
      () => dispatcher.handleMmio(GPA + 0x2410n, new Uint8Array(4), true)
    ).toThrow(expect.objectContaining({ code: 'ENODEV', region: 0 }));
  });

  it('a BAR at an unaligned address (mappings suspended) is device memory at the mappings\' file offsets', () => {
    const plan = planBarMappings(qemuE1000e, { pageSize: 0x1000, barAddresses: { 0: 0x1000_0800n, 3: 0x1004_0000n } });
    expect(plan.bars[0]!.suspended).toHaveLength(1);
    const { dispatcher } = setup(qemuE1000e, plan);
    expect(read(dispatcher, 0x1000_0800n + 0x1_f000n, 4).bytes).toEqual([0x1_f000, 0x1_f001, 0x1_f002, 0x1_f003].map(pattern));
    // e1000e's MSI-X BAR3 (table at 0, PBA at 0x2000) is relocated into a doubled BAR: PBA at 0x6000.
    expect(plan.bars.find((b) => b.index === 3)!.msix).toMatchObject({ relocated: true, pba: { offset: 0x6000n } });
    expect(read(dispatcher, 0x1004_6000n, 8).bytes).toEqual(Array(8).fill(0x55));
    // the real PBA, as the device has it
    expect(read(dispatcher, 0x1004_2000n, 4).bytes).toEqual([0x2000, 0x2001, 0x2002, 0x2003].map(pattern));
  });
});

describe('dispatch over random devices', () => {
  for (const pageSize of [0x1000, 0x4000, 0x1_0000]) {
    const title = 'every byte of every guest BAR has exactly one backing, device bytes translate into the region';
    it(`${title} (${pageSize / 1024} KiB pages)`, () => {
      const strategyArb = fc.constantFrom('relocate' as const, 'hole' as const);
      const samplesArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 8, maxLength: 8 });
      fc.assert(
        fc.property(deviceArb, strategyArb, fc.boolean(), samplesArb, (device, msix, unaligned, samples) => {
          const addresses: Record<number, bigint> = {};
          const relative = planBarMappings(device, { pageSize, msix });
          // below 4 GiB for 32-bit BARs
          relative.bars.forEach((b, i) => { addresses[b.index] = (BigInt(i + 1) << 28n) + (unaligned ? 0x800n : 0n); });
          const plan = planBarMappings(device, { pageSize, msix, barAddresses: addresses });
          const { dispatcher, msix: recorder, kernel } = setup(device, plan);
          for (const bar of plan.bars) {
            const compiled = compileBar(bar);
            // A partition of [0, guestSize): contiguous, non-empty, no overlap.
            expect(compiled.starts[0]).toBe(0);
            for (let p = 0; p < compiled.starts.length; p++) {
              expect(compiled.ends[p]!).toBeGreaterThan(compiled.starts[p]!);
              if (p > 0) expect(compiled.starts[p]).toBe(compiled.ends[p - 1]);
              if (compiled.kinds[p] === 0) expect(
                compiled.offsets[p]! + (compiled.ends[p]! - compiled.starts[p]!)
              ).toBeLessThanOrEqual(Number(bar.regionSize));
            }
            expect(compiled.ends[compiled.ends.length - 1]).toBe(Number(bar.guestSize));
            // The MSI-X structures as the guest sees them are never directly mapped.
            for (const r of [bar.msix?.table, bar.msix?.pba]) {
              if (!r) continue;
              for (const piece of barPieces(bar)) if (piece.backing === 'mapped') expect(
                piece.end <= r.offset || piece.start >= r.offset + r.size
              ).toBe(true);
            }
            // Sampled bytes go where the geometry says.
            for (const s of samples) {
              const offset = BigInt(Math.min(Math.floor(s * Number(bar.guestSize)), Number(bar.guestSize) - 1));
              recorder.calls.length = 0;
              const reads = kernel.calls.length;
              const { ours, bytes } = read(dispatcher, bar.guestAddress! + offset, 1);
              expect(ours).toBe(true);
              type Window = { offset: bigint; size: bigint };
              const inRange = (r?: Window): boolean => r !== undefined && offset >= r.offset && offset < r.offset + r.size;
              const within = (r: Window | undefined): string => (offset - r!.offset).toString(16);
              if (inRange(bar.msix?.table)) expect(recorder.calls).toEqual([`table-read ${within(bar.msix!.table)}+1`]);
              else if (inRange(bar.msix?.pba)) expect(recorder.calls).toEqual([`pba-read ${within(bar.msix!.pba)}+1`]);
              else if (offset < bar.regionSize) expect(bytes).toEqual([offset < 1n << 24n ? pattern(Number(offset)) : 0]);
              else expect({ bytes, syscalls: kernel.calls.length - reads }).toEqual({ bytes: [0], syscalls: 0 });
            }
          }
        }),
        { numRuns: 40 },
      );
    });
  }
});
