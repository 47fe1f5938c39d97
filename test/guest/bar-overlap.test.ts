/**
 * A guest that programs overlapping BARs through config space (issue 14), on the fake kernel with the
 * real BarMapper: no config write throws, a parked BAR's bytes still reach the device through MMIO exits
 * (the MSI-X table still emulated), the BAR holding a range answers there, and a random sequence of BAR
 * writes and COMMAND.MEM toggles keeps every decoded BAR reachable by a slot or by trapping.
 */
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import fc from 'fast-check';
import { VfioBarsError } from '../../src/errors.js';
import { PassthroughDevice, barPieces } from '../../src/guest/index.js';
import { KvmVm } from '../../src/kvm/index.js';
import { BarMapper, type MappedBar } from '../../src/map/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import type { PlannedBar } from '../../src/plan/types.js';
import { VfioDevice } from '../../src/vfio/index.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { qemuE1000e, qemuNvme } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs, qemuNvmeConfigSpace } from '../vfio/fixtures.js';

const COMMAND = 0x04;
const MEM_ON = 0x0006;
const MEM_OFF = 0x0004;
const BAR_REGISTER = (index: number): number => 0x10 + index * 4;
/** e1000e on 4 KiB pages: BAR0 and BAR1 128 KiB, BAR3 32 KiB (MSI-X relocated: table 0x4000, PBA 0x6000). */
const E1000E_AT = { 0: 0x1000_0000n, 1: 0x1010_0000n, 3: 0x1020_0000n };
const TABLE = 0x4000n;
/** The VMM's own slot (guest RAM, say) that BARs may be placed over. */
const RAM = { guestPhysAddr: 0x3000_0000n, memorySize: 0x1000n, userspaceAddr: 0x7e00_0000_0000n };

/** e1000e's config space as far as the guest view reads it: decode on, an MSI-X capability at 0xa0. */
function e1000eConfig(): Buffer {
  const c = Buffer.alloc(4096);
  c.writeUInt16LE(0x8086, 0x00);
  c.writeUInt16LE(0x10d3, 0x02);
  c.writeUInt16LE(MEM_ON, COMMAND);
  c.writeUInt16LE(0x0010, 0x06);
  c.writeUInt8(0xa0, 0x34);
  c.writeUInt8(0x11, 0xa0);
  c.writeUInt16LE(4, 0xa2); // 5 vectors
  c.writeUInt32LE(0x0000_0003, 0xa4); // table BIR 3 offset 0
  c.writeUInt32LE(0x0000_2003, 0xa8); // PBA BIR 3 offset 0x2000
  return c;
}

/** Each 4-byte word of BAR `index` reads `(index + 1) << 24 | offset`: a read says which BAR and offset it reached. */
function seed(kernel: FakeKernel, description: DeviceDescription): void {
  for (const region of description.regions.filter((r) => r.index < 6 && r.size > 0n && (r.flags & 1) !== 0)) {
    const bytes = kernel.regions.bytes(region.index);
    for (let at = 0; at + 4 <= bytes.length; at += 4) bytes.writeUInt32LE((((region.index + 1) << 24) | at) >>> 0, at);
  }
}

const ROOTS = new Map<string, ReturnType<typeof fakeSysfs>>();

function world(description: DeviceDescription, config: Buffer, addresses: Record<number, bigint>) {
  const roots = ROOTS.get(description.bdf) ?? fakeSysfs(description.bdf, '5');
  ROOTS.set(description.bdf, roots);
  const kernel = new FakeKernel({ pageSize: 0x1000, device: description, config, devRoot: roots.devRoot, group: '5' });
  seed(kernel, description);
  const device = VfioDevice.open(description.bdf, { ...roots, syscalls: kernel, iommu: 'type1' });
  const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${roots.devRoot}/kvm` });
  const warnings: string[] = [];
  const mapper = new BarMapper(device, vm, {
    dmaMap: true, logger: { debug: () => undefined, info: () => undefined, warn: (m) => warnings.push(m) },
  });
  mapper.map(planBarMappings(description, { pageSize: 0x1000, barAddresses: addresses }));
  const guest = new PassthroughDevice(device, mapper, vm);
  const read32 = (gpa: bigint): number | undefined => {
    const data = new Uint8Array(4);
    return guest.handleMmio(gpa, data, false) ? new DataView(data.buffer).getUint32(0, true) : undefined;
  };
  const write32 = (gpa: bigint, value: number): boolean => {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value, true);
    return guest.handleMmio(gpa, data, true);
  };
  const close = (): void => {
    guest.close();
    mapper[Symbol.dispose]();
    vm.close();
    device.close();
  };
  return { kernel, device, vm, mapper, guest, warnings, read32, write32, close };
}

const e1000e = () => world(qemuE1000e, e1000eConfig(), E1000E_AT);
const word = (index: number, offset: bigint): number => (((index + 1) << 24) | Number(offset)) >>> 0;

describe('PassthroughDevice: the guest programs overlapping BARs', () => {
  it('a 32-bit BAR written over a sibling with decode on: no throw, parked, its bytes forwarded; the holder answers in the overlap', () => {
    const w = e1000e();
    const address = E1000E_AT[3];
    expect(() => w.guest.configWrite(BAR_REGISTER(1), 4, Number(address))).not.toThrow(); // BAR1 (128 KiB) over BAR3 (32 KiB)
    const bar1 = w.mapper.bars.get(1)!;
    expect(bar1).toMatchObject({ state: 'trapped', guestAddress: address, parked: { code: 'OVERLAPS_BAR', bar: 3 } });
    expect(bar1.regions.every((r) => r.slot === undefined)).toBe(true);
    expect(w.warnings.filter((m) => m.includes('parked'))).toHaveLength(1);
    // Beyond BAR3 the exit is BAR1's, forwarded to the device at the right offset.
    expect(w.read32(address + 0x1_0000n)).toBe(word(1, 0x1_0000n));
    expect(w.write32(address + 0x1_0010n, 0x1234_5678)).toBe(true);
    expect(w.kernel.regions.bytes(1).readUInt32LE(0x1_0010)).toBe(0x1234_5678);
    // Inside BAR3 its slot serves the mapped half; its MSI-X table (trapped) is still BAR3's emulation.
    expect(w.write32(address + TABLE + 8n, 0x4242)).toBe(true);
    expect(w.guest.msix!.shadow.message(0).data).toBe(0x4242);
    expect(w.read32(address + 0x10n)).toBe(word(3, 0x10n));
    // The guest puts BAR1 back: its slot returns, BAR3 never lost its own.
    w.guest.configWrite(BAR_REGISTER(1), 4, Number(E1000E_AT[1]));
    expect(w.mapper.bars.get(1)).toMatchObject({ state: 'direct', guestAddress: E1000E_AT[1] });
    expect(w.mapper.bars.get(1)!.parked).toBeUndefined();
    expect(w.mapper.bars.get(1)!.regions[0]!.slot).toBeDefined();
    expect(w.read32(address + 0x1_0000n)).toBeUndefined(); // nothing of this device there any more
    w.close();
  });

  it('a BAR over the VMM\'s RAM slot: parked (OVERLAPS_SLOT), device bytes and the MSI-X table served by trapping', () => {
    const w = e1000e();
    w.vm.addSlot(RAM);
    w.guest.configWrite(BAR_REGISTER(3), 4, Number(RAM.guestPhysAddr));
    expect(w.mapper.bars.get(3)).toMatchObject({ state: 'trapped', parked: { code: 'OVERLAPS_SLOT' } });
    expect(w.read32(RAM.guestPhysAddr + 0x1000n)).toBe(word(3, 0x1000n)); // mapped half, now trapped
    expect(w.write32(RAM.guestPhysAddr + TABLE + 16n + 8n, 0x77)).toBe(true); // vector 1's data
    expect(w.guest.msix!.shadow.message(1).data).toBe(0x77);
    expect(w.read32(RAM.guestPhysAddr + TABLE + 16n + 8n)).toBe(0x77);
    expect(w.kernel.regions.bytes(3).readUInt32LE(0x18)).toBe(word(3, 0x18n)); // never reached the device
    w.guest.configWrite(BAR_REGISTER(3), 4, Number(E1000E_AT[3]));
    expect(w.mapper.bars.get(3)!.state).toBe('direct');
    w.close();
  });

  it('half of a 64-bit BAR with decode on: the high half lands it on a slot (parked), the low half frees it (direct)', () => {
    const config = qemuNvmeConfigSpace();
    config.writeUInt16LE(MEM_ON, COMMAND);
    const w = world(qemuNvme, config, { 0: 0x80_0000_0000n });
    w.vm.addSlot({ ...RAM, guestPhysAddr: 0x1_0000_0000n });
    expect(() => w.guest.configWrite(0x14, 4, 0x1)).not.toThrow(); // 0x1_0000_0000: the VMM's slot
    expect(w.mapper.bars.get(0)).toMatchObject({ guestAddress: 0x1_0000_0000n, parked: { code: 'OVERLAPS_SLOT' } });
    expect(w.read32(0x1_0000_1000n)).toBe(word(0, 0x1000n));
    w.guest.configWrite(0x10, 4, 0x8000_0000);
    expect(w.mapper.bars.get(0)).toMatchObject({ state: 'direct', guestAddress: 0x1_8000_0000n });
    expect(w.mapper.bars.get(0)!.parked).toBeUndefined();
    expect(w.kernel.slotsOf(w.vm.fd).map((s) => s.guestPhysAddr)).toContain(0x1_8000_0000n);
    w.close();
  });

  it('COMMAND.MEM off and on while parked: nothing decodes, then the BARs are decided again in index order', () => {
    const w = e1000e();
    w.guest.configWrite(BAR_REGISTER(1), 4, Number(E1000E_AT[3])); // BAR1 parked over BAR3
    w.guest.configWrite(COMMAND, 2, MEM_OFF);
    expect(w.kernel.live().slots).toBe(0);
    expect([...w.mapper.bars.values()].some((b) => b.parked)).toBe(false);
    expect(w.read32(E1000E_AT[3] + 0x1_0000n)).toBeUndefined();
    w.guest.configWrite(COMMAND, 2, MEM_ON);
    // Enabled in index order: BAR1 decodes first and holds the range, BAR3 is parked under it.
    expect(w.mapper.bars.get(1)!.parked).toBeUndefined();
    expect(w.mapper.bars.get(3)!.parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 1 });
    expect(w.read32(E1000E_AT[3] + TABLE)).toBe(word(1, TABLE)); // the holder answers where they overlap
    w.guest.configWrite(BAR_REGISTER(1), 4, Number(E1000E_AT[1]));
    expect(w.mapper.bars.get(3)).toMatchObject({ state: 'direct' });
    expect(w.mapper.bars.get(3)!.parked).toBeUndefined();
    expect(w.write32(E1000E_AT[3] + TABLE + 8n, 0x99)).toBe(true);
    expect(w.guest.msix!.shadow.message(0).data).toBe(0x99);
    w.close();
  });
});

/** Which BAR (and piece) the guest reaches at `gpa`: the decoding BAR holding it, else a parked one (lowest index). */
function owner(bars: readonly MappedBar[], gpa: bigint): MappedBar | undefined {
  const covering = bars.filter((b) => b.decode && gpa >= b.guestAddress! && gpa < b.guestAddress! + b.planned.guestSize);
  return covering.find((b) => !b.parked) ?? covering.sort((a, b) => a.index - b.index)[0];
}

/** What a 4-byte read of `bar` at `offset` must give when trapped: a device word, the emulated MSI-X table (small), or padding. */
function expectedTrapped(bar: PlannedBar, offset: bigint): { device?: number; kind: string } {
  const piece = barPieces(bar).find((p) => offset >= p.start && offset < p.end)!;
  if (piece.backing === 'mapped') {
    const fileOffset = piece.mapping.fileOffset + (offset - piece.start);
    return fileOffset < bar.regionSize ? { device: word(bar.index, fileOffset), kind: 'device' } : { kind: 'padding' };
  }
  const { kind, fileOffset } = piece.range;
  // Device bytes, and the PBA, which reads through to the device's own (no vector is pending here).
  if (kind === 'device' || kind === 'msix-pba') return { device: word(bar.index, fileOffset! + (offset - piece.start)), kind };
  return { kind };
}

describe('PassthroughDevice: COMMAND.MEM off with a parked BAR', () => {
  it('parked BARs go off first: the holder going off does not hand its range to a BAR going off too (no slot added)', () => {
    const w = e1000e();
    w.guest.configWrite(BAR_REGISTER(3), 4, Number(E1000E_AT[1] + 0x8000n)); // BAR3 parked inside BAR1
    expect(w.mapper.bars.get(3)!.parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 1 });
    const first = w.kernel.calls.length;
    w.guest.configWrite(COMMAND, 2, MEM_OFF);
    const slotCalls = w.kernel.calls.slice(first).filter((c) => c.name === 'KVM_SET_USER_MEMORY_REGION');
    expect(slotCalls.map((c) => c.detail.endsWith(' size 0'))).toEqual([true, true]); // BAR0's and BAR1's removed
    expect(w.mapper.warnings.filter((x) => x.code === 'OVERLAPS_BAR')).toHaveLength(1);
    w.close();
  });
});

describe('PassthroughDevice overlaps under fault injection', () => {
  /** Config writes that park over a sibling and over RAM, toggle COMMAND.MEM while parked, and restore. */
  const WRITES: readonly [number, 2 | 4, number][] = [
    [BAR_REGISTER(1), 4, Number(E1000E_AT[3])],
    [BAR_REGISTER(3), 4, 0x1040_0000],
    [COMMAND, 2, MEM_OFF],
    [BAR_REGISTER(3), 4, Number(E1000E_AT[1] + 0x8000n)],
    [COMMAND, 2, MEM_ON],
    [BAR_REGISTER(1), 4, Number(RAM.guestPhysAddr)],
    [BAR_REGISTER(1), 4, Number(E1000E_AT[1])],
    [BAR_REGISTER(3), 4, Number(E1000E_AT[3])],
  ];

  /** The guest view agrees with the mapper, and the mapper with the kernel. */
  function expectConsistent(w: ReturnType<typeof e1000e>, where: string): void {
    const slots = new Map(w.kernel.slotsOf(w.vm.fd).map((s) => [s.slot, s]));
    let ours = 0;
    for (const bar of w.mapper.bars.values()) {
      const attached = bar.decode && !bar.parked;
      for (const region of bar.regions) {
        expect(region.slot !== undefined, `${where}: BAR${bar.index} slot`).toBe(attached);
        if (region.slot !== undefined) expect(slots.get(region.slot)?.guestPhysAddr, where).toBe(region.mapping.gpa);
        if (region.slot !== undefined) ours++;
      }
      // The dispatcher claims the BAR where the mapper has it (a parked BAR's too), and only while it decodes.
      const claimed = w.read32(bar.guestAddress! + bar.planned.guestSize - 0x10n) !== undefined;
      expect(claimed, `${where}: BAR${bar.index} claimed`).toBe(bar.decode);
    }
    expect(slots.size, `${where}: slots`).toBe(ours + 1);
    expect(w.kernel.live().dmaMaps, `${where}: DMA maps`).toBe(ours);
  }

  for (const [name, errno] of [['ENOMEM', constants.errno.ENOMEM], ['EEXIST', constants.errno.EEXIST]] as const) {
    it(`every syscall of the writes failing with ${name} in turn: a typed error or a parked BAR, consistent, nothing leaked`, () => {
      const reference = e1000e();
      reference.vm.addSlot(RAM);
      const first = reference.kernel.calls.length;
      for (const [offset, size, value] of WRITES) reference.guest.configWrite(offset, size, value);
      const calls = reference.kernel.calls.slice(first);
      reference.close();
      expect(calls.length).toBeGreaterThan(20);
      for (const call of calls) {
        const w = e1000e();
        w.vm.addSlot(RAM);
        w.kernel.failAt(call.index, errno);
        const where = `call ${call.index} ${call.name} ${call.detail}`;
        for (const [offset, size, value] of WRITES) {
          try {
            w.guest.configWrite(offset, size, value);
          } catch (error) {
            expect(error, where).toBeInstanceOf(VfioBarsError);
          }
        }
        expectConsistent(w, where);
        // Without the fault, the guest's next COMMAND write settles everything: each BAR decodes where its
        // registers say (a move that failed is made now), a decode change that stopped part-way is finished.
        w.kernel.clearFaults();
        w.guest.configWrite(COMMAND, 2, MEM_ON);
        expectConsistent(w, `${where}, then COMMAND`);
        for (const bar of w.mapper.bars.values()) {
          expect(bar.decode, `${where}: BAR${bar.index} decode`).toBe(true);
          const register = BigInt(w.guest.configRead(BAR_REGISTER(bar.index), 4) & ~0xf);
          expect(bar.guestAddress, `${where}: BAR${bar.index} where its register says`).toBe(register);
        }
        w.close();
        expect(w.kernel.live(), `leak after failing ${where}`).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
      }
    });
  }
});

describe('PassthroughDevice: random BAR writes and COMMAND.MEM toggles (fast-check)', () => {
  type Op = { kind: 'bar'; index: 0 | 1 | 3; address: bigint } | { kind: 'command'; on: boolean };
  const addressArb = fc.constantFrom(
    0x1000_0000n, 0x1000_8000n, 0x1002_0000n, 0x1010_0000n, 0x1020_0000n, 0x1020_8000n, 0x3000_0000n, 0x3001_0000n, 0x4000_0000n,
  );
  const indexArb = fc.constantFrom(0 as const, 1 as const, 3 as const);
  const barWrite = fc.record({ kind: fc.constant('bar' as const), index: indexArb, address: addressArb });
  const command = fc.record({ kind: fc.constant('command' as const), on: fc.boolean() });
  const opArb: fc.Arbitrary<Op> = fc.oneof({ weight: 4, arbitrary: barWrite }, { weight: 1, arbitrary: command });

  it('never throws; slots never overlap; every decoded BAR\'s bytes reach the device by a slot or by trapping', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 20 }), (ops) => {
      const w = e1000e();
      w.vm.addSlot(RAM);
      for (const op of ops) {
        if (op.kind === 'bar') w.guest.configWrite(BAR_REGISTER(op.index), 4, Number(op.address));
        else w.guest.configWrite(COMMAND, 2, op.on ? MEM_ON : MEM_OFF);
        checkReachable(w);
      }
      w.close();
      expect(w.kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
    }), { numRuns: 150, interruptAfterTimeLimit: 15_000 });
  });

  function checkReachable(w: ReturnType<typeof e1000e>): void {
    const slots = w.kernel.slotsOf(w.vm.fd);
    for (const a of slots) {
      for (const b of slots) {
        const apart = a.guestPhysAddr + a.memorySize <= b.guestPhysAddr || b.guestPhysAddr + b.memorySize <= a.guestPhysAddr;
        if (a !== b) expect(apart).toBe(true);
      }
    }
    const bars = [...w.mapper.bars.values()];
    const ours = new Map(bars.flatMap(
      (b) => b.regions.filter((r) => r.slot !== undefined).map((r) => [r.slot!, { bar: b, region: r }] as const),
    ));
    // Parked only while needed: over a BAR that holds its range, or over the VMM's slot.
    const overlap = (start: bigint, size: bigint, b: MappedBar): boolean => start < b.guestAddress! + b.planned.guestSize
      && b.guestAddress! < start + size;
    for (const parked of bars.filter((b) => b.decode && b.parked)) {
      const holder = bars.find((b) => b.decode && !b.parked && overlap(b.guestAddress!, b.planned.guestSize, parked));
      const overRam = overlap(RAM.guestPhysAddr, RAM.memorySize, parked);
      expect(holder !== undefined || overRam, `BAR${parked.index} parked for nothing`).toBe(true);
      if (parked.parked!.code === 'OVERLAPS_BAR') expect(holder).toBeDefined();
    }
    for (const bar of bars.filter((b) => b.decode)) {
      for (let offset = 0n; offset < bar.planned.guestSize; offset += 0x1000n) {
        for (const at of [offset, offset + 0x7f0n]) {
          const gpa = bar.guestAddress! + at;
          const reached = owner(bars, gpa)!;
          const slot = slots.find((s) => gpa >= s.guestPhysAddr && gpa < s.guestPhysAddr + s.memorySize);
          if (slot && !ours.has(slot.slot)) continue; // the VMM's RAM: KVM gives the guest that, not a BAR
          const within = gpa - reached.guestAddress!;
          if (slot) {
            // A slot: it must be the reached BAR's own mapping of exactly this byte.
            const { bar: holder, region } = ours.get(slot.slot)!;
            expect(holder.index).toBe(reached.index);
            expect(holder.parked).toBeUndefined();
            expect(region.mapping.barOffset + (gpa - region.mapping.gpa!)).toBe(within);
            continue;
          }
          const expected = expectedTrapped(reached.planned, within);
          const value = w.read32(gpa);
          expect(value, `BAR${reached.index} +0x${within.toString(16)} (${expected.kind})`).toBeDefined();
          if (expected.device !== undefined) expect(value).toBe(expected.device);
          else if (expected.kind === 'padding') expect(value).toBe(0);
          else expect(value! >>> 24).toBe(0); // MSI-X emulation, never a device word
        }
      }
    }
  }
});
