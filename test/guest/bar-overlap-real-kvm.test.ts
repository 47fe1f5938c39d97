/**
 * Overlapping BARs on the real /dev/kvm (issue 14): a vCPU reads through the slots of the BAR that holds
 * a range, a parked BAR's accesses exit and reach the device (its MSI-X table still emulated), a BAR
 * placed over the VM's RAM is refused by the real KVM (EEXIST) and parked, and moving away restores slots.
 */
import { expect, it } from 'vitest';
import { PassthroughDevice } from '../../src/guest/index.js';
import { KvmVcpu, KvmVm } from '../../src/kvm/index.js';
import { setupX86 } from '../../src/kvm/probe-x86.js';
import { BarMapper } from '../../src/map/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { MemfdTwoBarDevice } from './memfd-two-bar-device.js';
import { codePage, x86 } from '../helpers/x86-code.js';

const BAR0 = 0x4000_0000n; // 16 KiB NVMe BAR0, relocated MSI-X: 32 KiB in the guest, table at 0x4000
const BAR2 = 0x4010_0000n; // 16 KiB
const CODE = 0x7ff0_0000n; // the VM's one page of RAM
const TABLE = 0x4000n;
const COMMAND = 0x04;


interface World extends Disposable {
  device: MemfdTwoBarDevice;
  vm: KvmVm;
  mapper: BarMapper;
  guest: PassthroughDevice;
  /** Runs `program` to hlt: the values reported on port 0x10, and each MMIO exit with whether the device claimed it. */
  run(program: number[]): { reports: bigint[]; exits: string[] };
}

function world(): World {
  const device = new MemfdTwoBarDevice();
  const vm = KvmVm.create({ syscalls: device.syscalls });
  const sys = vm.syscalls;
  const { page, code } = codePage(vm, CODE);
  const vcpu = KvmVcpu.create(vm);
  const mapper = new BarMapper(device, vm, { logger: { debug: () => undefined, info: () => undefined, warn: () => undefined } });
  mapper.map(planBarMappings(device.describe(), { pageSize: 0x1000, barAddresses: { 0: BAR0, 2: BAR2 } }));
  const guest = new PassthroughDevice(device, mapper, vm);
  const run = (program: number[]): { reports: bigint[]; exits: string[] } => {
    code.fill(0);
    code.set([...program, ...x86.hlt]);
    setupX86(sys, vcpu.fd, CODE);
    const reports: bigint[] = [];
    const exits: string[] = [];
    for (let i = 0; i < 64; i++) {
      const exit = vcpu.run();
      if (exit.kind === 'hlt') return { reports, exits };
      if (exit.kind === 'io' && exit.port === 0x10) reports.push(exit.data);
      else if (exit.kind === 'mmio') {
        const claimed = guest.handleMmio(exit.address, vcpu.mmioData().subarray(0, exit.length), exit.isWrite);
        exits.push(`${exit.isWrite ? 'write' : 'read'} 0x${exit.address.toString(16)}${claimed ? '' : ' unclaimed'}`);
      } else throw new Error(`unexpected exit ${exit.kind}`);
    }
    throw new Error('guest did not halt');
  };
  return {
    device, vm, mapper, guest, run,
    [Symbol.dispose]: () => {
      guest.close();
      mapper[Symbol.dispose]();
      vcpu.close();
      vm.close();
      sys.munmap(page);
      device[Symbol.dispose]();
    },
  };
}

const hexOf = (v: bigint): string => `0x${v.toString(16)}`;

describeKvm('overlapping BARs on the real /dev/kvm', () => {
  it('BAR0 written over BAR2: BAR2 keeps its slot (no exit there), BAR0\'s MSI-X table still exits to the emulation', () => {
    using w = world();
    w.device.writeU32(0x10n, 0xb0b0_0010);
    w.device.writeBar2U32(0x10n, 0xb2b2_0010);
    w.guest.configWrite(0x10, 4, Number(BAR2)); // low half of 64-bit BAR0: now at BAR2 (high half 0)
    expect(w.mapper.bars.get(0)).toMatchObject({ state: 'trapped', guestAddress: BAR2, parked: { code: 'OVERLAPS_BAR', bar: 2 } });
    const table = BAR2 + TABLE;
    const result = w.run([
      ...x86.load(BAR2 + 0x10n), ...x86.out(0x10), // BAR2's slot
      ...x86.store(table + 8n, 0x4041), ...x86.load(table + 8n), ...x86.out(0x10), // BAR0's table (beyond BAR2)
    ]);
    expect(result.reports).toEqual([0xb2b2_0010n, 0x4041n]);
    expect(result.exits).toEqual([`write ${hexOf(table + 8n)}`, `read ${hexOf(table + 8n)}`]);
    expect(w.guest.msix!.shadow.message(0).data).toBe(0x4041);
    // BAR2 moves away: BAR0 gets its slot where it is, BAR2 has its own at the new place; no exits.
    w.guest.configWrite(0x18, 4, 0x4020_0000);
    expect(w.mapper.bars.get(0)).toMatchObject({ state: 'direct' });
    expect(w.mapper.bars.get(0)!.parked).toBeUndefined();
    const after = w.run([...x86.load(BAR2 + 0x10n), ...x86.out(0x10), ...x86.load(0x4020_0010n), ...x86.out(0x10)]);
    expect(after).toEqual({ reports: [0xb0b0_0010n, 0xb2b2_0010n], exits: [] });
    expect(w.vm.slotCount).toBe(3);
  });

  it('BAR0 over the VM\'s RAM: KVM answers EEXIST, BAR0 is parked and its registers reached by trapping; moved back, direct', () => {
    using w = world();
    w.device.writeU32(0x1010n, 0x1234_abcd);
    w.guest.configWrite(0x10, 4, Number(CODE)); // BAR0's first page is the code page: the RAM slot stays
    expect(w.mapper.bars.get(0)!.parked).toMatchObject({ code: 'OVERLAPS_SLOT' });
    expect(w.vm.slotCount).toBe(2); // RAM and BAR2
    const result = w.run([...x86.load(CODE + 0x1010n), ...x86.out(0x10), ...x86.store(CODE + 0x1010n, 0x5555_aaaa)]);
    expect(result.reports).toEqual([0x1234_abcdn]);
    expect(result.exits).toEqual([`read ${hexOf(CODE + 0x1010n)}`, `write ${hexOf(CODE + 0x1010n)}`]);
    const back = Buffer.alloc(4);
    w.device.syscalls.pread(w.device.fd, back, 0x1010n);
    expect(back.readUInt32LE(0)).toBe(0x5555_aaaa);
    w.guest.configWrite(0x10, 4, Number(BAR0));
    expect(w.mapper.bars.get(0)!.state).toBe('direct');
    expect(w.run([...x86.load(BAR0 + 0x1010n), ...x86.out(0x10)])).toEqual({ reports: [0x5555_aaaan], exits: [] });
  });

  it('COMMAND.MEM off and on while parked, and 200 moves over and off a sibling: slot count back where it started', () => {
    using w = world();
    const start = w.vm.slotCount;
    w.guest.configWrite(0x18, 4, Number(BAR0)); // BAR2 over BAR0
    expect(w.mapper.bars.get(2)!.parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 0 });
    w.guest.configWrite(COMMAND, 2, 0x0004);
    expect(w.vm.slotCount).toBe(1); // the RAM slot
    expect(w.run([...x86.load(BAR0 + 0x10n), ...x86.out(0x10)]).exits).toEqual([`read ${hexOf(BAR0 + 0x10n)} unclaimed`]);
    w.guest.configWrite(COMMAND, 2, 0x0006); // index order: BAR0 decodes first and keeps the range
    expect(w.mapper.bars.get(2)!.parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 0 });
    for (let i = 0; i < 200; i++) {
      w.guest.configWrite(0x18, 4, Number(i % 2 === 0 ? BAR2 : BAR0));
      expect(w.vm.slotCount).toBe(i % 2 === 0 ? start : start - 1);
    }
    w.guest.configWrite(0x18, 4, Number(BAR2));
    expect(w.vm.slotCount).toBe(start);
    expect(w.run([...x86.load(BAR2 + 0x10n), ...x86.out(0x10)]).exits).toEqual([]);
  });
});
