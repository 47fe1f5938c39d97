/**
 * The interrupt half of the fake kernel: eventfds (counters, nonblocking reads), KVM's in-kernel irqchip,
 * GSI routing table and irqfds, and vfio-pci's MSI-X triggers (VFIO_DEVICE_SET_IRQS, including the
 * NORESIZE rule). Answers follow virt/kvm/irqchip.c, virt/kvm/eventfd.c, arch/x86/kvm and
 * drivers/vfio/pci/vfio_pci_intrs.c; the KVM answers are cross-checked against /dev/kvm in
 * test/guest/fake-vs-real-irq.test.ts. FakeKernel delegates to it.
 */
import { constants } from 'node:os';
import {
  KVM_IRQ_CAP, KVM_IRQ_ROUTING_TYPE, KVM_IRQFD_FLAGS, KVM_MSI_VALID_DEVID, VFIO_IRQ_FLAGS, VFIO_IRQ_SET, VFIO_PCI_IRQ, decodeIrqRouting,
  decodeIrqSet,
  decodeIrqfd, type IoctlName,
} from '../../src/uapi/index.js';
import type { IrqDescription } from '../../src/vfio/description.js';

const E = constants.errno;
/** x86 KVM_MAX_IRQ_ROUTES (what KVM_CHECK_EXTENSION(KVM_CAP_IRQ_ROUTING) answers). */
export const FAKE_MAX_IRQ_ROUTES = 4096;
const U64_MAX = (1n << 64n) - 1n;

interface Eventfd { counter: bigint; nonblock: boolean }
interface Route { gsi: number; type: number; flags: number; u: number[] }
interface VmIrq { irqchip: boolean; routes: Route[]; irqfds: Map<number, number> }
interface DeviceMsix { count: number; triggers: Map<number, number> }

/** An MSI that KVM delivered to the guest (through an irqfd and an MSI route). */
export interface DeliveredMsi {
  readonly vmFd: number; readonly gsi: number;
  readonly addressLo: number; readonly addressHi: number; readonly data: number; readonly devid?: number,
}

export type Fail = (errno: number) => never;

export class FakeIrq {
  readonly delivered: DeliveredMsi[] = [];
  readonly #eventfds = new Map<number, Eventfd>();
  readonly #vms = new Map<number, VmIrq>();
  readonly #devices = new Map<number, DeviceMsix>();
  readonly #irqs: readonly IrqDescription[];

  constructor(irqs: readonly IrqDescription[] = []) {
    this.#irqs = irqs;
  }

  /** KVM_CHECK_EXTENSION answers of x86 KVM for the interrupt capabilities, or undefined for others. */
  capability(cap: number): number | undefined {
    switch (cap) {
      case KVM_IRQ_CAP.IRQCHIP: return 1;
      case KVM_IRQ_CAP.IRQ_ROUTING: return FAKE_MAX_IRQ_ROUTES;
      case KVM_IRQ_CAP.IRQFD: return 1;
      case KVM_IRQ_CAP.SIGNAL_MSI: return 1;
      case KVM_IRQ_CAP.MSI_DEVID: return 0; // x86 has no ITS
      default: return undefined;
    }
  }

  addEventfd(fd: number, initval: number, flags: number): void {
    this.#eventfds.set(fd, { counter: BigInt(initval), nonblock: (flags & 0o4000) !== 0 });
  }

  isEventfd(fd: number): boolean {
    return this.#eventfds.has(fd);
  }

  /** A closed eventfd detaches its irqfds (KVM sees EPOLLHUP); a closed VM or device drops its state. */
  onClose(fd: number): void {
    this.#eventfds.delete(fd);
    for (const vm of this.#vms.values()) vm.irqfds.delete(fd);
    this.#vms.delete(fd);
    this.#devices.delete(fd);
  }

  live(): { eventfds: number; irqfds: number; routes: number; msixEnabled: number } {
    let irqfds = 0;
    let routes = 0;
    for (const vm of this.#vms.values()) {
      irqfds += vm.irqfds.size;
      routes += vm.routes.length;
    }
    return { eventfds: this.#eventfds.size, irqfds, routes, msixEnabled: this.#devices.size };
  }

  /** The routing table KVM holds for a VM. */
  routesOf(vmFd: number): readonly Route[] {
    return this.#vms.get(vmFd)?.routes ?? [];
  }

  irqfdsOf(vmFd: number): ReadonlyMap<number, number> {
    return this.#vms.get(vmFd)?.irqfds ?? new Map();
  }

  /** The eventfd vfio-pci signals for MSI-X `vector`, if any (count: vectors enabled). */
  msixOf(deviceFd: number): { count: number; triggers: ReadonlyMap<number, number> } | undefined {
    return this.#devices.get(deviceFd);
  }

  /** The device raises MSI-X `vector`: vfio-pci signals its trigger eventfd. False when none is set. */
  raiseMsix(deviceFd: number, vector: number): boolean {
    const fd = this.#devices.get(deviceFd)?.triggers.get(vector);
    if (fd === undefined) return false;
    this.#signal(fd, 1n);
    return true;
  }

  eventfdCounter(fd: number): bigint | undefined {
    return this.#eventfds.get(fd)?.counter;
  }

  read(fd: number, buffer: Buffer, fail: Fail): number {
    const e = this.#eventfds.get(fd)!;
    if (buffer.length < 8) return fail(E.EINVAL);
    if (e.counter === 0n) return fail(E.EAGAIN); // the fake never blocks: a blocking read would hang
    buffer.writeBigUInt64LE(e.counter, 0);
    e.counter = 0n;
    return 8;
  }

  write(fd: number, buffer: Buffer, fail: Fail): number {
    if (buffer.length < 8) return fail(E.EINVAL);
    const value = buffer.readBigUInt64LE(0);
    if (value === U64_MAX) return fail(E.EINVAL);
    this.#signal(fd, value);
    return 8;
  }

  /** Interrupt ioctls; undefined when `request` is not one of them. */
  ioctl(
    kind: string,
    fd: number,
    request: IoctlName,
    buffer: Buffer,
    fail: Fail,
    isOpen: (fd: number) => boolean = () => false,
  ): number | undefined {
    switch (`${kind}:${request}`) {
      case 'vm:KVM_CREATE_IRQCHIP': return this.#createIrqchip(fd, fail);
      case 'vm:KVM_SET_GSI_ROUTING': return this.#setRouting(fd, buffer, fail);
      case 'vm:KVM_IRQFD': return this.#irqfd(fd, buffer, fail, isOpen);
      case 'device:VFIO_DEVICE_SET_IRQS': return this.#setIrqs(fd, buffer, fail);
      default: return undefined;
    }
  }

  #vm(fd: number): VmIrq {
    let vm = this.#vms.get(fd);
    if (!vm) this.#vms.set(fd, (vm = { irqchip: false, routes: [], irqfds: new Map() }));
    return vm;
  }

  #createIrqchip(fd: number, fail: Fail): number {
    const vm = this.#vm(fd);
    if (vm.irqchip) return fail(E.EEXIST);
    vm.irqchip = true;
    return 0;
  }

  /** virt/kvm/irqchip.c kvm_set_irq_routing + arch/x86 kvm_set_routing_entry. */
  #setRouting(fd: number, buffer: Buffer, fail: Fail): number {
    const vm = this.#vm(fd);
    if (!vm.irqchip) return fail(E.EINVAL);
    const table = decodeIrqRouting(buffer);
    if (table.nr > FAKE_MAX_IRQ_ROUTES || table.flags !== 0) return fail(E.EINVAL);
    const byGsi = new Map<number, Route[]>();
    for (const e of table.entries) {
      if (e.gsi >= FAKE_MAX_IRQ_ROUTES) return fail(E.EINVAL);
      if (e.type === KVM_IRQ_ROUTING_TYPE.MSI ? (e.flags & ~KVM_MSI_VALID_DEVID) !== 0 : e.flags !== 0) return fail(E.EINVAL);
      if (e.type === KVM_IRQ_ROUTING_TYPE.IRQCHIP) {
        const [chip, pin] = e.u as [number, number];
        if (chip > 2 || pin >= (chip === 2 ? 24 : 8)) return fail(E.EINVAL);
      } else if (e.type !== KVM_IRQ_ROUTING_TYPE.MSI) {
        return fail(E.EINVAL);
      }
      const same = byGsi.get(e.gsi) ?? [];
      // One GSI: several irqchip pins on different chips, or exactly one non-irqchip route.
      if (same.some(
        (o) => o.type !== KVM_IRQ_ROUTING_TYPE.IRQCHIP || e.type !== KVM_IRQ_ROUTING_TYPE.IRQCHIP || o.u[0] === e.u[0]
      )) return fail(E.EINVAL);
      byGsi.set(e.gsi, [...same, e]);
    }
    vm.routes = table.entries;
    return 0;
  }

  /** virt/kvm/eventfd.c kvm_irqfd. */
  #irqfd(fd: number, buffer: Buffer, fail: Fail, isOpen: (fd: number) => boolean): number {
    const vm = this.#vm(fd);
    const args = decodeIrqfd(buffer);
    if ((args.flags & ~(KVM_IRQFD_FLAGS.DEASSIGN | KVM_IRQFD_FLAGS.RESAMPLE)) !== 0) return fail(E.EINVAL);
    // eventfd_ctx_fdget: no such fd is EBADF, an fd that is not an eventfd EINVAL.
    if (!this.#eventfds.has(args.fd)) return fail(isOpen(args.fd) ? E.EINVAL : E.EBADF);
    if ((args.flags & KVM_IRQFD_FLAGS.DEASSIGN) !== 0) {
      if (vm.irqfds.get(args.fd) === args.gsi) vm.irqfds.delete(args.fd);
      return 0;
    }
    if (!vm.irqchip || (args.flags & KVM_IRQFD_FLAGS.RESAMPLE) !== 0) return fail(E.EINVAL);
    for (const other of this.#vms.values()) if (other.irqfds.has(args.fd)) return fail(E.EBUSY);
    vm.irqfds.set(args.fd, args.gsi);
    // kvm_irqfd_assign polls the eventfd: a count already there is injected but NOT consumed (measured).
    const e = this.#eventfds.get(args.fd)!;
    if (e.counter > 0n) this.#deliver(fd, vm, args.gsi);
    return 0;
  }

  /** Adds to the counter; an eventfd with an irqfd is consumed at once and its route fires. */
  #signal(fd: number, value: bigint): void {
    const e = this.#eventfds.get(fd);
    if (!e) return;
    e.counter += value;
    if (e.counter === 0n) return;
    for (const [vmFd, vm] of this.#vms) {
      const gsi = vm.irqfds.get(fd);
      if (gsi === undefined) continue;
      e.counter = 0n;
      this.#deliver(vmFd, vm, gsi);
      return;
    }
  }

  /** KVM injects through the GSI's route; without an MSI route the signal goes nowhere (as in KVM). */
  #deliver(vmFd: number, vm: VmIrq, gsi: number): void {
    const route = vm.routes.find((r) => r.gsi === gsi && r.type === KVM_IRQ_ROUTING_TYPE.MSI);
    if (!route) return;
    const [addressLo, addressHi, data, devid] = route.u as [number, number, number, number];
    this.delivered.push({ vmFd, gsi, addressLo, addressHi, data, ...((route.flags & KVM_MSI_VALID_DEVID) !== 0 && { devid }) });
  }

  /** vfio_pci_set_irqs_ioctl → vfio_pci_set_msi_trigger for the MSI-X index. */
  #setIrqs(fd: number, buffer: Buffer, fail: Fail): number {
    const set = decodeIrqSet(buffer);
    const info = this.#irqs.find((i) => i.index === set.index);
    const knownData = VFIO_IRQ_SET.DATA_NONE | VFIO_IRQ_SET.DATA_BOOL | VFIO_IRQ_SET.DATA_EVENTFD;
    const knownAction = VFIO_IRQ_SET.ACTION_MASK | VFIO_IRQ_SET.ACTION_UNMASK | VFIO_IRQ_SET.ACTION_TRIGGER;
    const known = knownData | knownAction;
    const outOfRange = !info || set.start + set.count > info.count || (set.count > 0 && set.start >= info.count);
    if ((set.flags & ~known) !== 0 || outOfRange) return fail(E.EINVAL);
    if (set.index !== VFIO_PCI_IRQ.MSIX || (set.flags & VFIO_IRQ_SET.ACTION_TRIGGER) === 0) return fail(E.ENOTTY);
    const current = this.#devices.get(fd);
    if ((set.flags & VFIO_IRQ_SET.DATA_NONE) !== 0 && set.count === 0) {
      if (!current) return fail(E.EINVAL);
      this.#devices.delete(fd);
      return 0;
    }
    if ((set.flags & VFIO_IRQ_SET.DATA_EVENTFD) === 0) return fail(E.EINVAL);
    for (const e of set.eventfds) if (e >= 0 && !this.#eventfds.has(e)) return fail(E.EBADF);
    const msix = current ?? { count: set.start + set.count, triggers: new Map<number, number>() };
    const noresize = (info.flags & VFIO_IRQ_FLAGS.NORESIZE) !== 0;
    if (current && set.start + set.count > current.count) {
      if (noresize) return fail(E.EINVAL);
      msix.count = set.start + set.count;
    }
    set.eventfds.forEach((e, i) => (e < 0 ? msix.triggers.delete(set.start + i) : msix.triggers.set(set.start + i, e)));
    this.#devices.set(fd, msix);
    return 0;
  }
}
