/**
 * The guest view on the real /dev/kvm (x86-64): a vCPU's MMIO exits are served by PassthroughDevice
 * (a memfd stands in for the device's BAR0 and config space), and MSI-X vectors go eventfd → KVM irqfd.
 */
import { constants } from 'node:os';
import { expect, it } from 'vitest';
import { GsiRouter, PassthroughDevice, x86DefaultIrqchipRoutes, type GuestBarHost } from '../../src/guest/index.js';
import { KvmVcpu, KvmVm } from '../../src/kvm/index.js';
import { setupX86 } from '../../src/kvm/probe-x86.js';
import { BarMapper } from '../../src/map/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import { X86_REGS, X86_SREGS } from '../../src/uapi/index.js';
import type { MsixStrategy } from '../../src/plan/types.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { MemfdMsixDevice } from './memfd-msix-device.js';
import { codePage, u32, x86 } from '../helpers/x86-code.js';

const BAR = 0x4000_0000n;
const CODE = 0x7ff0_0000n;

/** BarMapper is the GuestBarHost (plannedBar, move, setDecode): the type check is the point. */
function hostOf(mapper: BarMapper): GuestBarHost {
  return mapper;
}


interface Guest extends Disposable {
  vm: KvmVm;
  vcpu: KvmVcpu;
  code: Uint8Array;
}

/** A VM with one page of code at CODE and a vCPU in flat protected mode (created after `before`). */
function guestVm(device: MemfdMsixDevice, before: (vm: KvmVm) => void = () => undefined): Guest {
  const vm = KvmVm.create({ syscalls: device.syscalls });
  before(vm);
  const sys = vm.syscalls;
  const { page, code } = codePage(vm, CODE);
  const vcpu = KvmVcpu.create(vm);
  return {
    vm, vcpu, code,
    [Symbol.dispose]: () => {
      vcpu.close();
      vm.close();
      sys.munmap(page);
    },
  };
}

/** Runs the program to hlt; MMIO exits go to the device. Returns the values reported on port 0x10 and the MMIO exits. */
function run(guest: Guest, program: number[], device: PassthroughDevice): { reports: bigint[]; mmio: string[] } {
  guest.code.set([...program, ...x86.hlt]);
  setupX86(guest.vm.syscalls, guest.vcpu.fd, CODE);
  const reports: bigint[] = [];
  const mmio: string[] = [];
  for (let i = 0; i < 64; i++) {
    const exit = guest.vcpu.run();
    if (exit.kind === 'hlt') return { reports, mmio };
    if (exit.kind === 'io' && exit.port === 0x10) reports.push(exit.data);
    else if (exit.kind === 'mmio') {
      mmio.push(`${exit.isWrite ? 'write' : 'read'} 0x${exit.address.toString(16)}`);
      expect(device.handleMmio(exit.address, guest.vcpu.mmioData().subarray(0, exit.length), exit.isWrite)).toBe(true);
    } else throw new Error(`unexpected exit ${JSON.stringify(exit, (_, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
  }
  throw new Error('guest did not halt');
}

function mapped(device: MemfdMsixDevice, vm: KvmVm, msix: MsixStrategy): { mapper: BarMapper; guestView: PassthroughDevice } {
  const plan = planBarMappings(device.describe(), { pageSize: 0x1000, barAddresses: { 0: BAR }, msix });
  const mapper = new BarMapper(device, vm);
  mapper.map(plan);
  return { mapper, guestView: new PassthroughDevice(device, hostOf(mapper), vm) };
}

describeKvm('PassthroughDevice on the real /dev/kvm', () => {
  it('a vCPU writes and reads back a relocated MSI-X table entry through MMIO exits; mapped registers do not exit', () => {
    using device = new MemfdMsixDevice();
    device.writeU32(0x10n, 0xfeed_beef);
    using guest = guestVm(device);
    const { mapper, guestView } = mapped(device, guest.vm, 'relocate');
    const table = BAR + 0x4000n; // 16 KiB BAR doubled to 32 KiB, table in the upper half
    expect(mapper.bars.get(0)!.planned.msix?.table?.offset).toBe(0x4000n);
    const result = run(guest, [
      ...x86.store(table + 0x18n, 0x4042), ...x86.load(table + 0x18n), ...x86.out(0x10),
      ...x86.load(BAR + 0x10n), ...x86.out(0x10),
    ], guestView);
    expect(result.reports).toEqual([0x4042n, 0xfeed_beefn]);
    expect(result.mmio).toEqual([`write 0x${(table + 0x18n).toString(16)}`, `read 0x${(table + 0x18n).toString(16)}`]);
    expect(guestView.msix!.shadow.message(1).data).toBe(0x4042);
    guestView.close();
    mapper.unmapAll();
  });

  it("'hole' mode: a device register sharing the MSI-X page is forwarded to the device; the PBA reads through", () => {
    using device = new MemfdMsixDevice();
    device.writeU32(0x2800n, 0x1234_5678);
    device.writeU32(0x3000n, 0b100); // the device's own PBA: vector 2 pending
    using guest = guestVm(device);
    const { mapper, guestView } = mapped(device, guest.vm, 'hole');
    const result = run(guest, [
      ...x86.load(BAR + 0x2800n), ...x86.out(0x10),
      ...x86.store(BAR + 0x2ffcn, 0xabcd_0123),
      ...x86.load(BAR + 0x3000n), ...x86.out(0x10),
      ...x86.load(BAR + 0x2000n + 12n), ...x86.out(0x10),
    ], guestView);
    expect(result.reports).toEqual([0x1234_5678n, 0b100n, 1n]); // register, PBA, vector 0 masked after reset
    expect(result.mmio).toHaveLength(4);
    const back = Buffer.alloc(4);
    device.syscalls.pread(device.fd, back, 0x2ffcn);
    expect(back.readUInt32LE(0)).toBe(0xabcd_0123);
    guestView.close();
    mapper.unmapAll();
  });

  it('a vector raised on its eventfd is consumed by KVM through the irqfd; masked, it waits in the PBA and goes on unmask', () => {
    using device = new MemfdMsixDevice();
    using guest = guestVm(device, (vm) => vm.syscalls.ioctl(vm.fd, 'KVM_CREATE_IRQCHIP'));
    const plan = planBarMappings(device.describe(), { pageSize: 0x1000, barAddresses: { 0: BAR } });
    const mapper = new BarMapper(device, guest.vm);
    mapper.map(plan);
    const router = new GsiRouter(guest.vm, { grant: { first: 64, count: 128 }, vmmRoutes: x86DefaultIrqchipRoutes() });
    const guestView = new PassthroughDevice(device, hostOf(mapper), guest.vm, { interrupts: { mode: 'irqfd', router } });
    const mmio32 = (gpa: bigint, value: number): void => {
      const data = Buffer.alloc(4);
      data.writeUInt32LE(value);
      expect(guestView.handleMmio(gpa, data, true)).toBe(true);
    };
    const table = BAR + 0x4000n;
    mmio32(table, 0xfee0_0000);
    mmio32(table + 8n, 0x41);
    mmio32(table + 12n, 0);
    guestView.configWrite(0x42, 2, 0x8000);
    expect(device.triggers.size).toBe(1);
    const eventfd = device.triggers.get(0)!;
    const readCounter = (): string => {
      try {
        const b = Buffer.alloc(8);
        device.syscalls.read(eventfd, b);
        return `count ${b.readBigUInt64LE(0)}`;
      } catch (error) {
        return (error as { errno: number }).errno === constants.errno.EAGAIN ? 'EAGAIN' : String(error);
      }
    };
    device.raise(0);
    expect(readCounter()).toBe('EAGAIN'); // KVM took it: the irqfd is live on this eventfd

    mmio32(table + 12n, 1); // mask: the irqfd is detached
    device.raise(0);
    const pba = Buffer.alloc(8);
    guestView.handleMmio(BAR + 0x5000n, pba, false);
    expect(pba.readUInt32LE(0)).toBe(1); // pending, held by the library
    mmio32(table + 12n, 0); // unmask: re-attached and the pending message re-signalled, which KVM takes
    expect(readCounter()).toBe('EAGAIN');
    guestView.handleMmio(BAR + 0x5000n, pba.fill(0), false);
    expect(pba.readUInt32LE(0)).toBe(0);

    guestView.configWrite(0x42, 2, 0x0000);
    expect(device.triggers.size).toBe(0);
    guestView.close();
    mapper.unmapAll();
  });

  it('the MSI arrives in the guest: device eventfd → KVM irqfd → MSI route → LAPIC → the vCPU runs its handler', () => {
    using device = new MemfdMsixDevice();
    using guest = guestVm(device, (vm) => vm.syscalls.ioctl(vm.fd, 'KVM_CREATE_IRQCHIP'));
    const mapper = new BarMapper(device, guest.vm);
    mapper.map(planBarMappings(device.describe(), { pageSize: 0x1000, barAddresses: { 0: BAR } }));
    const router = new GsiRouter(guest.vm, { grant: { first: 64, count: 128 }, vmmRoutes: x86DefaultIrqchipRoutes() });
    using guestView = new PassthroughDevice(device, hostOf(mapper), guest.vm, { interrupts: { mode: 'irqfd', router } });
    const VECTOR = 0x41;
    // The driver's side, as a guest kernel would do it: program entry 3, unmask, enable MSI-X.
    const entry = Buffer.alloc(16);
    entry.writeUInt32LE(0xfee0_0000, 0); // LAPIC, destination APIC id 0, physical
    entry.writeUInt32LE(VECTOR, 8); // fixed delivery, edge
    for (let at = 0; at < 16; at += 4) guestView.handleMmio(BAR + 0x4000n + 3n * 16n + BigInt(at), entry.subarray(at, at + 4), true);
    guestView.configWrite(0x42, 2, 0x8000);

    interruptProgram(guest, VECTOR);
    const first = guest.vcpu.run();
    expect(first).toMatchObject({ kind: 'io', port: 0x12 }); // APIC enabled, about to sti
    device.raise(3); // what vfio-pci's interrupt handler does: eventfd_signal
    const second = guest.vcpu.run();
    expect(second).toMatchObject({ kind: 'io', port: 0x11 }); // the handler for vector 0x41 ran (0x14 would be a timeout)
    guestView.close();
    mapper.unmapAll();
  });
});

/**
 * 32-bit guest: enable the LAPIC (SVR), report "ready" on port 0x12, sti and spin (port 0x14 on timeout).
 * The IDT gate for `vector` runs a handler that reports on port 0x11, EOIs and returns.
 */
function interruptProgram(guest: Guest, vector: number): void {
  const LAPIC_SVR = 0xfee0_00f0n;
  const LAPIC_EOI = 0xfee0_00b0n;
  const HANDLER = 0x100;
  const IDT = 0x400;
  const STACK_TOP = 0x700n;
  const GDT = 0x700;
  const outAl = (port: number): number[] => [0xe6, port];
  const main = [
    ...x86.store(LAPIC_SVR, 0x1ff), ...outAl(0x12), 0xfb, // sti
    // mov ecx, N; dec ecx; jnz (a bounded wait: an MSI already in the IRR is taken right after sti)
    0xb9, ...u32(0x10_0000), 0x49, 0x75, 0xfd,
    ...outAl(0x14), 0xf4,
  ];
  const handler = [...outAl(0x11), ...x86.store(LAPIC_EOI, 0), 0xcf]; // iretd
  const code = guest.code;
  code.fill(0);
  code.set(main, 0);
  code.set(handler, HANDLER);
  const view = Buffer.from(code.buffer, code.byteOffset, code.byteLength);
  view.writeBigUInt64LE(0x00cf_9b00_0000_ffffn, GDT + 8); // 0x08: flat 32-bit code
  view.writeBigUInt64LE(0x00cf_9300_0000_ffffn, GDT + 16); // 0x10: flat data
  const gate = IDT + vector * 8;
  const target = Number(CODE) + HANDLER;
  view.writeUInt16LE(target & 0xffff, gate);
  view.writeUInt16LE(0x08, gate + 2);
  view.writeUInt8(0x8e, gate + 5); // present, 32-bit interrupt gate
  view.writeUInt16LE(target >>> 16, gate + 6);

  const sys = guest.vm.syscalls;
  setupX86(sys, guest.vcpu.fd, CODE);
  const sregs = Buffer.alloc(X86_SREGS.size);
  sys.ioctl(guest.vcpu.fd, 'KVM_GET_SREGS', sregs);
  sregs.writeBigUInt64LE(CODE + BigInt(GDT), X86_SREGS.gdt);
  sregs.writeUInt16LE(3 * 8 - 1, X86_SREGS.gdt + 8);
  sregs.writeBigUInt64LE(CODE + BigInt(IDT), X86_SREGS.idt);
  sregs.writeUInt16LE(vector * 8 + 7, X86_SREGS.idt + 8);
  sys.ioctl(guest.vcpu.fd, 'KVM_SET_SREGS', sregs);
  const regs = Buffer.alloc(X86_REGS.size);
  sys.ioctl(guest.vcpu.fd, 'KVM_GET_REGS', regs);
  regs.writeBigUInt64LE(CODE + STACK_TOP, X86_REGS.rsp);
  sys.ioctl(guest.vcpu.fd, 'KVM_SET_REGS', regs);
}
