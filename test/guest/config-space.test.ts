import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestError, VirtualConfigSpace, type ConfigSpaceHooks } from '../../src/guest/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import type { MappingPlan } from '../../src/plan/types.js';
import { RegionAccess } from '../../src/vfio/region-access.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { qemuE1000e, qemuNvme } from '../helpers/profiles.js';
import { qemuNvmeConfigSpace } from '../vfio/fixtures.js';
import { captureError } from '../helpers/capture-error.js';
import { FakeBarHost } from './fake-host.js';
import { fakeDevice } from './fake-device.js';
import { deviceArb } from './device-arb.js';

const GPA = 0x80_0000_0000n;

/** NVMe config space plus an extended chain: ARI 0x100 → AER 0x110 → Resizable BAR 0x140 → DSN 0x160. */
function configWithExtCaps(): Buffer {
  const c = qemuNvmeConfigSpace();
  const header = (id: number, next: number): number => (id | (1 << 16) | (next << 20)) >>> 0;
  c.writeUInt32LE(header(0x0e, 0x110), 0x100);
  c.writeUInt32LE(header(0x01, 0x140), 0x110);
  c.writeUInt32LE(header(0x15, 0x160), 0x140);
  c.writeUInt32LE(header(0x03, 0), 0x160);
  c.writeUInt32LE(0xfeed_f00d, 0x30); // a ROM BAR the guest must not see
  return c;
}

function setup(description: DeviceDescription, plan: MappingPlan, config = configWithExtCaps()) {
  const { kernel, handle } = fakeDevice(description, config, Number(plan.pageSize));
  const host = new FakeBarHost(plan);
  const events: string[] = [];
  const hooks: ConfigSpaceHooks = {
    msixControl: (enabled, masked) => events.push(`msix enabled=${enabled} masked=${masked}`),
    decode: (index, enabled) => events.push(`decode BAR${index} ${enabled}`),
    moved: (index, gpa) => events.push(`moved BAR${index} 0x${gpa.toString(16)}`),
  };
  const space = new VirtualConfigSpace({
    bdf: description.bdf, region: new RegionAccess(handle, description), host, bars: plan.bars.map((b) => b.index),
    ...(description.msix && { msix: description.msix }), hooks,
  });
  return { kernel, host, events, space };
}

describe('VirtualConfigSpace', () => {
  it('emulates a 64-bit BAR from the plan: flags, sizing in two halves, no move on sizing, a move on a completed address', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1_0000, barAddresses: { 0: GPA } });
    const { kernel, host, events, space } = setup(qemuNvme, plan);
    expect(space.configRead(0x00, 4)).toBe(0x0010_1b36); // from the device
    expect(space.configRead(0x10, 4)).toBe(0x0000_0004); // 64-bit memory BAR at 0x80_0000_0000
    expect(space.configRead(0x14, 4)).toBe(0x80);
    space.configWrite(0x04, 2, 0x0006); // MEM | MASTER: forwarded, and decode follows
    expect(kernel.regions.bytes(7).readUInt16LE(4)).toBe(0x0006);
    space.configWrite(0x10, 4, 0xffff_ffff);
    space.configWrite(0x14, 4, 0xffff_ffff);
    expect(space.configRead(0x10, 4)).toBe(0xfffe_0004); // the guest BAR is 128 KiB (relocated MSI-X)
    expect(space.configRead(0x14, 4)).toBe(0xffff_ffff);
    expect(space.configRead(0x10, 2)).toBe(0x0004);
    expect(space.configRead(0x12, 2)).toBe(0xfffe);
    space.configWrite(0x10, 4, 0x0000_0000); // the high half still holds the sizing pattern: nothing moves
    expect(host.moves).toEqual([]);
    space.configWrite(0x14, 4, 0x0000_0090);
    expect(host.moves).toEqual([[0, 0x90_0000_0000n]]);
    expect(events).toEqual(['decode BAR0 true', 'moved BAR0 0x9000000000']);
    expect(kernel.regions.bytes(7).readUInt32LE(0x10)).toBe(0x0000_0004); // BAR writes never reach the device
  });

  it('a 64-bit BAR whose low half has bit 31 set (0xff_fffe_0000) reads back and is re-placed as an unsigned address', () => {
    // Linux sizes a BAR and writes its address back; with bit 31 set in the low half, a signed 32-bit
    // mask once made the programmed address negative ("got 0x-20000").
    const top = 0xff_fffe_0000n;
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1_0000, barAddresses: { 0: top } });
    const { host, space } = setup(qemuNvme, plan);
    space.configWrite(0x04, 2, 0x0006);
    expect(space.configRead(0x10, 4)).toBe(0xfffe_0004);
    expect(space.configRead(0x14, 4)).toBe(0xff);
    for (const [at, value] of [[0x10, 0xffff_ffff], [0x14, 0xffff_ffff], [0x10, 0xfffe_0000], [0x14, 0xff]] as const) space.configWrite(at, 4, value);
    expect(host.moves).toEqual([]);
    space.configWrite(0x10, 4, 0x8000_0000);
    expect(host.moves).toEqual([[0, 0xff_8000_0000n]]);
  });

  it('COMMAND.MEM: clearing removes decode, a BAR reprogrammed meanwhile moves before decode returns', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1000, barAddresses: { 0: GPA } });
    const { host, events, space } = setup(qemuNvme, plan);
    space.configWrite(0x04, 2, 0x0002);
    expect(space.memoryDecode).toBe(true);
    space.configWrite(0x04, 1, 0x00);
    expect(host.decode).toEqual([[0, true], [0, false]]);
    space.configWrite(0x14, 4, 0xa0);
    expect(host.moves).toEqual([]);
    space.configWrite(0x04, 2, 0x0002);
    expect(host.moves).toEqual([[0, 0xa0_0000_0000n]]);
    expect(host.decode.at(-1)).toEqual([0, true]);
    expect(events).toEqual(['decode BAR0 true', 'decode BAR0 false', 'moved BAR0 0xa000000000', 'decode BAR0 true']);
    space.configWrite(0x04, 2, 0x0006); // MEM stays set: nothing to do
    expect(host.decode).toHaveLength(3);
  });

  it('hides the ROM BAR, rewrites the MSI-X Table/PBA registers and emulates Message Control', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1_0000, barAddresses: { 0: GPA } });
    const { kernel, events, space } = setup(qemuNvme, plan);
    expect(space.configRead(0x30, 4)).toBe(0);
    space.configWrite(0x30, 4, 0xffff_f801);
    expect(space.configRead(0x30, 4)).toBe(0);
    expect(kernel.regions.bytes(7).readUInt32LE(0x30)).toBe(0xfeed_f00d);
    expect(space.configRead(0x40, 4)).toBe(0x0040_8011); // id 0x11, next 0x80, 65 vectors, disabled
    expect(space.configRead(0x44, 4)).toBe(0x1_0000); // table: BIR 0 at the relocated 0x10000
    expect(space.configRead(0x48, 4)).toBe(0x1_1000); // PBA: 0x11000
    space.configWrite(0x42, 2, 0xc040); // enable + function mask
    expect(space.configRead(0x42, 2)).toBe(0xc040);
    space.configWrite(0x40, 4, (0x8000_0000 | 0x0040_8011) >>> 0); // a dword write: unmask the function, keep enabled
    expect(space.configRead(0x40, 4)).toBe(0x8040_8011);
    expect(events).toEqual(['msix enabled=true masked=true', 'msix enabled=true masked=false']);
    space.configWrite(0x44, 4, 0x1234); // read-only
    expect(space.configRead(0x44, 4)).toBe(0x1_0000);
    expect(kernel.regions.bytes(7).readUInt16LE(0x42)).toBe(64); // Message Control never reaches the device
  });

  it('unlinks ARI and Resizable BAR from the extended chain and drops writes to them', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1000, barAddresses: { 0: GPA } });
    const { kernel, space } = setup(qemuNvme, plan);
    expect(space.configRead(0x100, 4)).toBe(0x110 << 20); // an empty header (id 0) pointing at AER
    expect(space.configRead(0x110, 4)).toBe((0x01 | (1 << 16) | (0x160 << 20)) >>> 0); // AER skips ReBAR
    expect(space.configRead(0x160, 4)).toBe((0x03 | (1 << 16)) >>> 0);
    space.configWrite(0x148, 4, 0x0000_0d00); // ReBAR control: must not resize the BAR
    space.configWrite(0x104, 2, 0x1234); // ARI control
    space.configWrite(0x118, 4, 0x55); // AER: forwarded
    expect(kernel.regions.bytes(7).readUInt32LE(0x148)).toBe(0);
    expect(kernel.regions.bytes(7).readUInt16LE(0x104)).toBe(0);
    expect(kernel.regions.bytes(7).readUInt32LE(0x118)).toBe(0x55);
  });

  it('refuses misaligned accesses and out-of-range values; reads 0 beyond the device\'s config space', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1000, barAddresses: { 0: GPA } });
    const { space } = setup({ ...qemuNvme, regions: qemuNvme.regions.map((r) => (r.index === 7 ? { ...r, size: 0x100n } : r)) }, plan);
    expect(captureError(() => space.configRead(0x11, 2))).toBeInstanceOf(GuestError);
    expect(captureError(() => space.configRead(0x10, 3 as 4))).toMatchObject({ code: 'BAD_CONFIG_ACCESS', bdf: qemuNvme.bdf });
    expect(() => space.configWrite(0x10, 2, 0x1_0000)).toThrow(RangeError);
    expect(space.configRead(0x100, 4)).toBe(0);
  });

  it('32-bit BARs (e1000e): one register each, unplanned and I/O BARs read 0', () => {
    const plan = planBarMappings(qemuE1000e, { pageSize: 0x1000, barAddresses: { 0: 0x1000_0000n, 1: 0x1002_0000n, 3: 0x1004_0000n } });
    const { space } = setup(qemuE1000e, plan, qemuNvmeConfigSpace());
    expect(space.configRead(0x10, 4)).toBe(0x1000_0000);
    space.configWrite(0x1c, 4, 0xffff_ffff);
    expect(space.configRead(0x1c, 4)).toBe(0xffff_8000); // MSI-X BAR3 doubled to 32 KiB
    expect(space.configRead(0x18, 4)).toBe(0); // I/O BAR2: not exposed
  });
});

describe('config-space BAR sizing over random devices', () => {
  it('returns the plan\'s size mask with the flag bits, and never moves a BAR', () => {
    fc.assert(
      fc.property(deviceArb, fc.constantFrom(0x1000, 0x4000, 0x1_0000), fc.constantFrom('relocate' as const, 'hole' as const), (device, pageSize, msix) => {
        const addresses: Record<number, bigint> = {};
        // Below 4 GiB, so 32-bit BARs can hold them; 256 MiB apart, aligned to any BAR the generator makes.
        planBarMappings(device, { pageSize, msix }).bars.forEach((b, i) => { addresses[b.index] = BigInt(i + 1) << 28n; });
        const plan = planBarMappings(device, { pageSize, msix, barAddresses: addresses });
        const { host, space } = setup({ ...device, regions: [...device.regions, { index: 7, flags: 3, size: 0x1000n, offset: 7n << 40n, capabilities: [] }] }, plan, qemuNvmeConfigSpace());
        space.configWrite(0x04, 2, 0x0002);
        for (const bar of plan.bars) {
          const at = 0x10 + bar.index * 4;
          space.configWrite(at, 4, 0xffff_ffff);
          const flags = (bar.is64Bit ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
          expect(space.configRead(at, 4)).toBe(((Number(bar.sizeMask & 0xffff_fff0n) | flags) >>> 0));
          if (bar.is64Bit && bar.index < 5 && !plan.bars.some((b) => b.index === bar.index + 1)) {
            space.configWrite(at + 4, 4, 0xffff_ffff);
            expect(space.configRead(at + 4, 4)).toBe(Number(bar.sizeMask >> 32n));
          }
        }
        expect(host.moves).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });
});
