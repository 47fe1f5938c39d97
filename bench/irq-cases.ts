/**
 * Interrupt delivery, the way a passed-through MSI-X vector travels: the device signals its vector's
 * eventfd, KVM's irqfd on that eventfd looks up the vector's MSI route and sets the vector in the guest's
 * in-kernel LAPIC from the eventfd wakeup itself (no kworker, no JavaScript). The JavaScript-relay
 * alternatives put Node between the device's eventfd and the irqfd's. bench/c/kvm-bench.c does the same.
 * A latency runs from the TSC at the device's eventfd write (the C kicker notes it) to the TSC the guest's
 * handler reads first; the exit that then reports it to the VMM is not timed.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, read, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  GsiRouter, KvmVcpu, KvmVm, MsixInterrupts, PROT, RegionAccess, SystemError, realSyscalls, x86DefaultIrqchipRoutes,
  type DeviceDescription, type HostMapping, type Syscalls, type VfioDeviceHandle,
} from 'vfio-bars';
import type * as Fs from 'node:fs';
import type * as WorkerThreads from 'node:worker_threads';
import type * as Library from 'vfio-bars';
import type { Side } from './cases.js';

const PAGE = BigInt(realSyscalls().pageSize());
/** The guest's vector for the device's MSI (any fixed vector from 16 up; 0x40 is clear of the PIC's and exceptions'). */
export const MSI_VECTOR = 0x40;
/** The first GSI the VMM grants the library (GSIs 0-23 are the irqchip pins). The MSI route lands here. */
export const MSI_GSI = 24;
/** The xAPIC's MMIO page; an MSI to it with destination id 0 targets vCPU 0 (physical, fixed, edge). */
export const LAPIC_BASE = 0xfee0_0000;
/** Guest reports: the MSI vector's handler ran, another vector's handler ran, set-up done. */
export const PORT = { delivered: 0x10, other: 0x11, ready: 0x12 } as const;
/** Where the MSI handler stores its RDTSC (u64), in guest page 0. */
export const STAMP_AT = 0x500;
/** struct kvm_sregs: 8 kvm_segment of 24 bytes (cs, ds, es, fs, ...); `base` is a segment's first u64. */
const SREGS_SIZE = 312;
const SREGS_FS_BASE = 3 * 24;
/** struct kvm_device_attr on the vCPU: group KVM_VCPU_TSC_CTRL (0), attribute KVM_VCPU_TSC_OFFSET (0). */
const TSC_CTRL = { group: 0, offset: 0 } as const;
/** eventfd(2)'s EFD_CLOEXEC. */
const EFD_CLOEXEC = 0o2000000;
const U64 = (1n << 64n) - 1n;
const RESET_PAGE = 0xffff_f000n;
/** Where CS:IP f000:f0xx lands once an interrupt has reloaded CS (real mode: base = selector × 16). */
const LOW_CODE_PAGE = 0xf_f000n;

// 16-bit real-mode encodings: `mov dword [fs:disp16], imm32` is 64 66 c7 06 disp16 imm32.
const FS_WRITE_SVR = [0x64, 0x66, 0xc7, 0x06, 0xf0, 0x00, 0xff, 0x01, 0x00, 0x00];
const FS_WRITE_EOI = [0x64, 0x66, 0xc7, 0x06, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00];

/**
 * The MSI guest, real mode from the reset vector. The VMM points FS's hidden base at the LAPIC page
 * (KVM_SET_SREGS; the guest never reloads FS), so `[fs:0xf0]` is the Spurious-Interrupt Vector Register
 * and `[fs:0xb0]` the EOI register. At reset KVM's LAPIC is software-disabled (SVR 0xff) and drops fixed
 * interrupts, so the guest first writes SVR = 0x1ff (enable, spurious vector 0xff), reports ready on port
 * 0x12, then `sti; hlt` forever. Vector 0x40's handler first stores its RDTSC at 0x500 (when the interrupt
 * arrived: what the benchmark times, so the VMM's exit handling is not part of the figure), reports on port
 * 0x10, then EOIs (else its ISR bit blocks the next one) and returns; every other vector reports on 0x11,
 * EOIs, returns. `code` is mapped at the reset page and at 0xff000; `low` (IVT, stack below 0xff0) at 0.
 */
export function msiProgram(): { code: Buffer; low: Buffer } {
  const code = Buffer.alloc(Number(PAGE));
  // mov sp, 0x0ff0; SVR; out 0x12, al; sti; hlt; jmp hlt
  code.set([0xbc, 0xf0, 0x0f, ...FS_WRITE_SVR, 0xe6, PORT.ready, 0xfb, 0xf4, 0xeb, 0xfd], 0);
  // rdtsc; mov [0x500], eax; mov [0x504], edx; out 0x10, al; EOI; iret
  code.set([0x0f, 0x31, 0x66, 0xa3, 0x00, 0x05, 0x66, 0x89, 0x16, 0x04, 0x05, 0xe6, PORT.delivered, ...FS_WRITE_EOI, 0xcf], 0x40);
  code.set([0xe6, PORT.other, ...FS_WRITE_EOI, 0xcf], 0x60); // out 0x11, al; EOI; iret
  code.set([0xe9, 0x0d, 0xf0], 0xff0); // at 0xfffffff0: jmp 0xf000
  const low = Buffer.alloc(Number(PAGE));
  for (let v = 0; v < 256; v++) {
    low.writeUInt16LE(v === MSI_VECTOR ? 0xf040 : 0xf060, v * 4);
    low.writeUInt16LE(0xf000, v * 4 + 2);
  }
  return { code, low };
}

/** Runs cleanups in reverse; every one runs, the first error is rethrown. */
function runCleanups(cleanups: (() => void)[]): void {
  let first: unknown;
  while (cleanups.length > 0) {
    try {
      cleanups.pop()!();
    } catch (error) {
      first ??= error;
    }
  }
  if (first !== undefined) throw asError(first);
}

function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new RangeError(String(thrown));
}

/** One KVM_RUN, retried when a signal interrupted it (EINTR). */
function runOnce(vcpu: KvmVcpu): ReturnType<KvmVcpu['run']> {
  for (;;) {
    try {
      return vcpu.run();
    } catch (error) {
      if (!(error instanceof SystemError && error.code === 'EINTR')) throw error;
    }
  }
}

/**
 * A VM with the in-kernel irqchip (KVM_CREATE_IRQCHIP: PIC, IOAPIC and a LAPIC per vCPU), the MSI guest
 * in memory, one vCPU with FS pointed at its LAPIC, and the VM's GSI router (the x86 irqchip pins as the
 * VMM's routes, GSIs from 24 granted to devices).
 */
export class MsiGuest {
  /** The VM (irqchip created). */
  readonly vm: KvmVm;
  /** vCPU 0, run by the side that owns the guest (or by KVM_RUN on its fd from a worker). */
  readonly vcpu: KvmVcpu;
  /** The VM's routing table, shared by every device of the VM. */
  readonly router: GsiRouter;
  /** The memfd behind guest page 0 (IVT, stack, the handler's TSC stamp), for a worker to map. */
  readonly lowFd: number;
  /** Guest TSC = host TSC + tscOffset (mod 2^64), KVM_VCPU_TSC_OFFSET. */
  readonly tscOffset: bigint;
  readonly #low: DataView;
  readonly #cleanups: (() => void)[];

  private constructor(parts: { vm: KvmVm; vcpu: KvmVcpu; router: GsiRouter; low: HostMapping; lowFd: number; tscOffset: bigint },
    cleanups: (() => void)[]) {
    this.vm = parts.vm;
    this.vcpu = parts.vcpu;
    this.router = parts.router;
    this.lowFd = parts.lowFd;
    this.tscOffset = parts.tscOffset;
    this.#low = new DataView(parts.low.view!);
    this.#cleanups = cleanups;
  }

  /** Builds the guest; on failure everything built so far is released. */
  static create(sys: Syscalls): MsiGuest {
    const cleanups: (() => void)[] = [];
    try {
      const vm = KvmVm.create({ syscalls: sys });
      cleanups.push(() => vm.close());
      sys.ioctl(vm.fd, 'KVM_CREATE_IRQCHIP');
      const program = msiProgram();
      const code = pageWith(sys, program.code, cleanups);
      const lowFd = sys.memfdCreate('bench-msi-guest-low', 0);
      cleanups.push(() => sys.close(lowFd));
      const low = pageWith(sys, program.low, cleanups, lowFd);
      vm.addSlot({ guestPhysAddr: RESET_PAGE, memorySize: PAGE, userspaceAddr: code.address });
      vm.addSlot({ guestPhysAddr: LOW_CODE_PAGE, memorySize: PAGE, userspaceAddr: code.address });
      vm.addSlot({ guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: low.address });
      const vcpu = KvmVcpu.create(vm);
      cleanups.push(() => vcpu.close());
      pointFsAtLapic(sys, vcpu.fd);
      const tscOffset = readTscOffset(sys, vcpu.fd, pageWith(sys, Buffer.alloc(0), cleanups));
      const router = new GsiRouter(vm, { grant: { first: MSI_GSI, count: 8 }, vmmRoutes: x86DefaultIrqchipRoutes() });
      return new MsiGuest({ vm, vcpu, router, low, lowFd, tscOffset }, cleanups);
    } catch (error) {
      runCleanups(cleanups);
      throw error;
    }
  }

  /** Runs the guest through its LAPIC set-up to the ready report (nothing can be delivered before). */
  runUntilReady(): void {
    const exit = runOnce(this.vcpu);
    if (!(exit.kind === 'io' && exit.port === PORT.ready)) throw new RangeError(`MSI guest: not ready (${describeExit(exit)})`);
  }

  /** Runs the guest until a handler reports; returns the port (PORT.delivered or PORT.other). */
  runUntilHandler(): number {
    const exit = runOnce(this.vcpu);
    if (exit.kind === 'io' && (exit.port === PORT.delivered || exit.port === PORT.other)) return exit.port;
    throw new RangeError(`MSI guest: unexpected exit ${describeExit(exit)}`);
  }

  /** The host TSC when the MSI handler last started (its stamp, less the vCPU's TSC offset). */
  get handlerTsc(): bigint {
    return (this.#low.getBigUint64(STAMP_AT, true) - this.tscOffset) & U64;
  }

  /** Closes the vCPU, the VM and the guest's memory. */
  close(): void {
    runCleanups(this.#cleanups);
  }
}

function describeExit(exit: ReturnType<KvmVcpu['run']>): string {
  return exit.kind === 'io' ? `io port ${exit.port}` : exit.kind === 'other' ? `reason ${exit.reason}` : exit.kind;
}

/** KVM_GET_DEVICE_ATTR KVM_VCPU_TSC_OFFSET on the vCPU; KVM writes the u64 at `scratch` (a host page). */
function readTscOffset(sys: Syscalls, vcpuFd: number, scratch: HostMapping): bigint {
  const attr = Buffer.alloc(24); // struct kvm_device_attr: flags, group, attr, addr
  attr.writeUInt32LE(TSC_CTRL.group, 4);
  attr.writeBigUInt64LE(BigInt(TSC_CTRL.offset), 8);
  attr.writeBigUInt64LE(scratch.address, 16);
  sys.ioctl(vcpuFd, 'KVM_GET_DEVICE_ATTR', attr);
  return new DataView(scratch.view!).getBigUint64(0, true);
}

/** A page of memfd memory holding `bytes` (in `ownFd` when given, kept open), unmapped by the cleanups. */
function pageWith(sys: Syscalls, bytes: Buffer, cleanups: (() => void)[], ownFd?: number): HostMapping {
  const fd = ownFd ?? sys.memfdCreate('bench-msi-guest', 0);
  try {
    sys.ftruncate(fd, PAGE);
    const mapping = sys.mmap(fd, 0n, PAGE, PROT.READ | PROT.WRITE);
    cleanups.push(() => sys.munmap(mapping));
    new Uint8Array(mapping.view!).set(bytes);
    return mapping;
  } finally {
    if (ownFd === undefined) sys.close(fd);
  }
}

/**
 * Sets FS's hidden base to the LAPIC page (KVM_GET_SREGS, KVM_SET_SREGS): real mode keeps a segment's base
 * until the segment register is loaded again, which the MSI guest never does.
 */
export function pointFsAtLapic(sys: Syscalls, vcpuFd: number): void {
  const sregs = Buffer.alloc(SREGS_SIZE);
  sys.ioctl(vcpuFd, 'KVM_GET_SREGS', sregs);
  sregs.writeBigUInt64LE(BigInt(LAPIC_BASE), SREGS_FS_BASE);
  sys.ioctl(vcpuFd, 'KVM_SET_SREGS', sregs);
}

/**
 * The library's MSI-X path for one vector, as PassthroughDevice drives it: MsixInterrupts in 'irqfd'
 * delivery on the guest's router. What VFIO would do with the vector's eventfd (VFIO_DEVICE_SET_IRQS: the
 * device's interrupt handler signals it) is played by a stand-in: SET_IRQS on a memfd "device" succeeds
 * without a kernel behind it, and whoever benchmarks writes the eventfd as vfio_msihandler would.
 * The guest's table write (vector 0 → 0xfee00000 / vector 0x40, unmasked) and MSI-X enable are applied as
 * the VMM's config-space and MMIO handlers would apply them.
 */
export class StandInMsixDevice {
  /** The library's MSI-X state of the device: route, irqfd and eventfd of vector 0. */
  readonly msix: MsixInterrupts;
  readonly #sys: Syscalls;
  readonly #deviceFd: number;

  private constructor(sys: Syscalls, deviceFd: number, msix: MsixInterrupts) {
    this.#sys = sys;
    this.#deviceFd = deviceFd;
    this.msix = msix;
  }

  /** Enables vector 0 with the guest's message; on failure nothing stays (routes, irqfd, eventfd, fd). */
  static create(sys: Syscalls, guest: MsiGuest): StandInMsixDevice {
    const deviceFd = sys.memfdCreate('bench-msix-device', 0);
    let msix: MsixInterrupts | undefined;
    try {
      sys.ftruncate(deviceFd, PAGE);
      const description = standInDescription();
      const handle: VfioDeviceHandle = {
        bdf: 'bench-msix', fd: deviceFd, syscalls: sys, dma: undefined, iommuMode: 'noiommu', describe: () => description,
      };
      msix = new MsixInterrupts({
        bdf: handle.bdf, syscalls: withStandInSetIrqs(sys, deviceFd), deviceFd, vectors: 1, noresize: false,
        region: new RegionAccess(handle, description), pba: { bir: 0, offset: 0x800n, size: 8n },
        delivery: { mode: 'irqfd', vmFd: guest.vm.fd, router: guest.router },
      });
      const entry = Buffer.alloc(16); // address lo, address hi, data, vector control (0: unmasked)
      entry.writeUInt32LE(LAPIC_BASE, 0);
      entry.writeUInt32LE(MSI_VECTOR, 8);
      msix.tableWrite(0, entry);
      msix.setControl(true, false);
      return new StandInMsixDevice(sys, deviceFd, msix);
    } catch (error) {
      msix?.close();
      sys.close(deviceFd);
      throw error;
    }
  }

  /** The eventfd the device signals for vector 0 (KVM's irqfd listens on it). */
  get eventfd(): number {
    const fd = this.msix.eventfd(0);
    if (fd === undefined) throw new RangeError('MSI-X vector 0 is not enabled');
    return fd;
  }

  /** Releases the irqfd, the route, the GSI block and the eventfd (MsixInterrupts.close), then the device fd. */
  close(): void {
    try {
      this.msix.close();
    } finally {
      this.#sys.close(this.#deviceFd);
    }
  }
}

function standInDescription(): DeviceDescription {
  return {
    bdf: 'bench-msix', flags: 3, numRegions: 1, numIrqs: 0, irqs: [],
    regions: [{ index: 0, flags: 7, size: PAGE, offset: 0n, capabilities: [] }],
    bars: [{ index: 0, kind: 'memory', is64Bit: false, prefetchable: false, address: 0n }],
  };
}

/** `sys` with VFIO_DEVICE_SET_IRQS on the stand-in device answered 0 (there is no VFIO device behind it). */
function withStandInSetIrqs(sys: Syscalls, deviceFd: number): Syscalls {
  const ioctl: Syscalls['ioctl'] = (fd, request, arg) =>
    fd === deviceFd && request === 'VFIO_DEVICE_SET_IRQS' ? 0 : sys.ioctl(fd, request, arg);
  return new Proxy(sys, {
    get(target, property, receiver) {
      if (property === 'ioctl') return ioctl;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * The device side shared by both VMMs: the C program in `--kicker` mode (the code the C baseline forks).
 * It measures the TSC frequency first (20 ms against CLOCK_MONOTONIC); then for each go byte it waits 100 µs
 * (the vCPU is halted by then), notes the TSC in a shared page and writes the eventfd it was given.
 */
class Kicker {
  readonly goFd: number;
  readonly kickFd: number;
  readonly #sys: Syscalls;
  readonly #page: HostMapping;
  readonly #view: DataView;
  readonly #dir: string;
  readonly #child: ChildProcess;
  readonly #go = Buffer.of(1);

  #failure: Error | undefined;

  private constructor(sys: Syscalls, parts: { goFd: number; kickFd: number; page: HostMapping; dir: string; child: ChildProcess }) {
    this.#sys = sys;
    this.goFd = parts.goFd;
    this.kickFd = parts.kickFd;
    this.#page = parts.page;
    this.#view = new DataView(parts.page.view!);
    this.#dir = parts.dir;
    this.#child = parts.child;
    this.#child.on('error', (error) => { this.#failure ??= error; }); // e.g. the binary is missing
  }

  static start(sys: Syscalls, cBinary: string, eventfd: number): Kicker {
    const cleanups: (() => void)[] = [];
    try {
      const kickFd = sys.memfdCreate('bench-kick-page', 0);
      cleanups.push(() => sys.close(kickFd));
      sys.ftruncate(kickFd, PAGE);
      const page = sys.mmap(kickFd, 0n, PAGE, PROT.READ | PROT.WRITE);
      cleanups.push(() => sys.munmap(page));
      const dir = mkdtempSync(path.join(tmpdir(), 'vfio-bars-bench-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const fifo = path.join(dir, 'go');
      execFileSync('mkfifo', [fifo]);
      const goFd = openSync(fifo, 'r+');
      cleanups.push(() => closeSync(goFd));
      const child = spawn(cBinary, ['--kicker'], { stdio: [goFd, 'inherit', 'inherit', eventfd, kickFd] });
      return new Kicker(sys, { goFd, kickFd, page, dir, child });
    } catch (error) {
      runCleanups(cleanups);
      throw error;
    }
  }

  /** Lets the kicker go: 100 µs later it writes the eventfd. */
  kick(): void {
    if (this.#failure) throw this.#failure;
    writeSync(this.goFd, this.#go);
  }

  /** The host TSC when the kicker last wrote the eventfd. */
  get lastKickTsc(): bigint {
    return this.#view.getBigUint64(0, true);
  }

  /** TSC cycles to ns, with the kicker's measured frequency (there once the first kick happened). */
  toNs(cycles: number): number {
    return (cycles * 1e6) / Number(this.#view.getBigUint64(8, true));
  }

  close(): void {
    this.#child.kill();
    runCleanups([
      () => this.#sys.close(this.kickFd),
      () => this.#sys.munmap(this.#page),
      () => rmSync(this.#dir, { recursive: true, force: true }),
      () => closeSync(this.goFd),
    ]);
  }
}

/**
 * Direct delivery, no JavaScript on the path: kicker → vector eventfd → KVM irqfd → MSI route → LAPIC →
 * the halted vCPU wakes in KVM_RUN on this thread; ns per op is the round's median latency from the eventfd
 * write to the handler's first instruction (TSC stamps; the exit to port 0x10 afterwards only collects them).
 */
export function msiSide(sys: Syscalls, cBinary: string): Side {
  let guest: MsiGuest | undefined;
  let device: StandInMsixDevice | undefined;
  let kicker: Kicker | undefined;
  const teardown = (): void => {
    const parts = [guest, device, kicker]; // closed in reverse
    kicker = device = guest = undefined;
    runCleanups(parts.filter((p) => p !== undefined).map((p) => () => p.close()));
  };
  return {
    setup: () => {
      try {
        guest = MsiGuest.create(sys);
        device = StandInMsixDevice.create(sys, guest);
        guest.runUntilReady();
        kicker = Kicker.start(sys, cBinary, device.eventfd);
      } catch (error) {
        teardown();
        throw error;
      }
    },
    round: (n) => latencyRound(guest!, kicker!, n),
    teardown,
  };
}

/**
 * `n` kicks, each timed from the kicker's eventfd write to the handler's first instruction (TSC stamps of
 * both, so the exit to this VMM is not part of it); the round's median, in ns (a latency's scheduling
 * outliers on a shared machine would swamp a mean).
 */
function latencyRound(guest: MsiGuest, kicker: Kicker, n: number): number {
  const cycles = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    kicker.kick();
    const port = guest.runUntilHandler();
    if (port !== PORT.delivered) throw new RangeError(`MSI guest: vector other than ${MSI_VECTOR} delivered`);
    cycles[i] = Number(guest.handlerTsc - kicker.lastKickTsc);
  }
  return kicker.toNs(medianOf(cycles));
}

/** The median of `values` (sorted in place; the mean of the middle two when the count is even), as C computes it. */
function medianOf(values: Float64Array): number {
  values.sort();
  const n = values.length;
  return n % 2 === 1 ? values[(n - 1) / 2]! : Math.floor((values[n / 2 - 1]! + values[n / 2]!) / 2);
}

/** The relay of the thread variant, run in a worker (self-contained: it is sent as source). */
function relayWorkerMain(wt: typeof WorkerThreads, fs: typeof Fs): void {
  const data = wt.workerData as { from: number; to: number; stop: Int32Array };
  const buffer = Buffer.alloc(8);
  const one = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);
  wt.parentPort!.postMessage('ready');
  for (;;) {
    fs.readSync(data.from, buffer, 0, 8, null); // blocks this worker until the device signals
    if (Atomics.load(data.stop, 0) !== 0) return;
    fs.writeSync(data.to, one);
  }
}

/** A worker thread blocked in read(2) of the device eventfd, writing the vector's eventfd per signal (JavaScript). */
class RelayThread {
  readonly #worker: Worker;
  readonly #stop = new Int32Array(new SharedArrayBuffer(4));
  readonly #from: number;
  readonly #exited: Promise<void>;
  #failure: unknown;

  private constructor(from: number, to: number) {
    this.#from = from;
    const source = `const wt = require('node:worker_threads');\n(${relayWorkerMain.toString()})(wt, require('node:fs'));`;
    this.#worker = new Worker(source, { eval: true, workerData: { from, to, stop: this.#stop } });
    this.#worker.on('error', (error) => { this.#failure ??= error; });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
  }

  /** Starts the relay and waits until its loop runs (the vCPU then blocks this thread). */
  static async start(from: number, to: number): Promise<RelayThread> {
    const relay = new RelayThread(from, to);
    await new Promise<void>((resolve, reject) => {
      relay.#worker.once('message', () => resolve());
      relay.#worker.once('exit', () => reject(asError(relay.#failure ?? new RangeError('relay worker exited'))));
    });
    return relay;
  }

  /** The worker's error, if it failed. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Raises the stop flag, wakes the read with one more signal, waits for the worker to end. */
  async stop(): Promise<void> {
    Atomics.store(this.#stop, 0, 1);
    writeSync(this.#from, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
    await this.#exited;
  }
}

/** What both relay sides share: the guest, the stand-in device, the device's own eventfd and the kicker. */
interface RelayRig {
  guest: MsiGuest;
  device: StandInMsixDevice;
  /** Blocking: the relay's read waits on it. No irqfd on it: the relay carries the interrupt. */
  deviceEventfd: number;
  kicker: Kicker;
}

/** Builds the rig into `rig` one piece at a time, so a failure part-way leaves there what to close. */
function buildRelayRig(sys: Syscalls, cBinary: string, rig: Partial<RelayRig>): RelayRig {
  rig.guest = MsiGuest.create(sys);
  rig.device = StandInMsixDevice.create(sys, rig.guest);
  rig.guest.runUntilReady();
  rig.deviceEventfd = sys.eventfd(0, EFD_CLOEXEC);
  rig.kicker = Kicker.start(sys, cBinary, rig.deviceEventfd);
  return rig as RelayRig;
}

/** Stops the relay's threads (`stop`), then closes what the rig holds, in reverse; `rig` is left empty. */
async function closeRelayRig(sys: Syscalls, rig: Partial<RelayRig>, stop: () => Promise<void>): Promise<void> {
  const parts = { ...rig };
  delete rig.guest;
  delete rig.device;
  delete rig.deviceEventfd;
  delete rig.kicker;
  const cleanups: (() => void)[] = []; // run in reverse
  try {
    await stop();
  } finally {
    if (parts.guest) cleanups.push(() => parts.guest!.close());
    if (parts.device) cleanups.push(() => parts.device!.close());
    if (parts.deviceEventfd !== undefined) cleanups.push(() => sys.close(parts.deviceEventfd!));
    if (parts.kicker) cleanups.push(() => parts.kicker!.close());
    runCleanups(cleanups);
  }
}

/**
 * The JavaScript relay on a thread of its own, shaped like the C relay: kicker → the device's eventfd →
 * a worker blocked in fs.readSync → fs.writeSync of the vector's eventfd → KVM irqfd → MSI route → the
 * vCPU, whose KVM_RUN runs on this thread as in the direct case.
 */
export function msiRelayThreadSide(sys: Syscalls, cBinary: string): Side {
  const rig: Partial<RelayRig> = {};
  let relay: RelayThread | undefined;
  const teardown = async (): Promise<void> => {
    const stopping = relay;
    relay = undefined;
    await closeRelayRig(sys, rig, async () => {
      await stopping?.stop();
    });
  };
  return {
    setup: async () => {
      try {
        const { device, deviceEventfd } = buildRelayRig(sys, cBinary, rig);
        relay = await RelayThread.start(deviceEventfd, device.eventfd);
      } catch (error) {
        await teardown();
        throw error;
      }
    },
    round: (n) => {
      if (relay!.failure !== undefined) throw asError(relay!.failure);
      return latencyRound(rig.guest!, rig.kicker!, n);
    },
    teardown,
  };
}

/**
 * Node's side of the relay: a read of the device's (blocking) eventfd on libuv's thread pool, whose
 * completion runs on this thread's event loop and writes the irqfd's eventfd, then reads again.
 */
class JsRelay {
  #stopping = false;
  #error: unknown;
  #stopped: Promise<void>;
  #onStopped: () => void = () => undefined;
  readonly #from: number;
  readonly #buffer = Buffer.alloc(8);
  readonly #one = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);

  constructor(from: number, to: number) {
    this.#from = from;
    this.#stopped = new Promise((resolve) => { this.#onStopped = resolve; });
    const next = (): void => {
      read(from, this.#buffer, 0, 8, null, (error) => {
        if (this.#stopping || error) {
          this.#error ??= error ?? undefined;
          this.#onStopped();
          return;
        }
        writeSync(to, this.#one);
        next();
      });
    };
    next();
  }

  /** The relay's read error, if it stopped on one. */
  get error(): unknown {
    return this.#error;
  }

  /** Ends the pending read (one more write of the device eventfd) and waits for its completion. */
  async stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      writeSync(this.#from, this.#one);
    }
    await this.#stopped;
  }
}

/** What the vCPU worker gets: fds (process-wide) and the guest's TSC offset. */
interface VcpuWorkerData {
  readonly vcpuFd: number;
  readonly runSize: number;
  readonly goFd: number;
  readonly kickFd: number;
  readonly lowFd: number;
  readonly tscOffset: bigint;
  readonly page: number;
}

/**
 * The vCPU loop of the relay case, run in a worker (self-contained: it is sent as source). Per message of
 * `iterations`: as latencyRound, posting the summed TSC cycles; an empty message unmaps and ends the worker.
 */
function vcpuWorkerMain(
  wt: typeof WorkerThreads,
  fs: typeof Fs,
  lib: typeof Library,
): void {
  const data = wt.workerData as VcpuWorkerData;
  const sys = lib.realSyscalls();
  const run = sys.mmap(data.vcpuFd, 0n, BigInt(data.runSize), lib.PROT.READ | lib.PROT.WRITE);
  const kicks = sys.mmap(data.kickFd, 0n, BigInt(data.page), lib.PROT.READ);
  const low = sys.mmap(data.lowFd, 0n, BigInt(data.page), lib.PROT.READ);
  const runView = new DataView(run.view!);
  const kickView = new DataView(kicks.view!);
  const lowView = new DataView(low.view!);
  const u64 = (1n << 64n) - 1n;
  const go = Buffer.of(1);
  const port = wt.parentPort!;
  const kvmRun = (): void => {
    for (;;) {
      try {
        sys.ioctl(data.vcpuFd, 'KVM_RUN', 0);
        return;
      } catch (error) {
        if (!(error instanceof lib.SystemError && error.code === 'EINTR')) throw error;
      }
    }
  };
  port.on('message', (message: { iterations?: number }) => {
    if (message.iterations === undefined) {
      sys.munmap(run);
      sys.munmap(kicks);
      sys.munmap(low);
      port.close();
      return;
    }
    const cycles = new Float64Array(message.iterations);
    for (let i = 0; i < message.iterations; i++) {
      fs.writeSync(data.goFd, go);
      kvmRun();
      // kvm_run: exit_reason at 8; io.port at 34. Only the MSI vector's handler may exit here.
      if (runView.getUint32(8, true) !== 2 || runView.getUint16(34, true) !== 0x10) {
        throw new RangeError(`relay vCPU: unexpected exit ${runView.getUint32(8, true)} port ${runView.getUint16(34, true)}`);
      }
      // The handler's RDTSC at 0x500 of guest page 0 (guest TSC = host TSC + offset); the kick's at 0 of the kick page.
      cycles[i] = Number(((lowView.getBigUint64(0x500, true) - data.tscOffset) & u64) - kickView.getBigUint64(0, true));
    }
    port.postMessage(cycles, [cycles.buffer]);
  });
}

/** The built package the worker loads (workers run plain JavaScript, so dist/, not the sources). */
function builtLibraryUrl(): string {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new RangeError('bench: no package.json above the bench');
    dir = parent;
  }
  const entry = path.join(dir, 'dist', 'index.js');
  if (!existsSync(entry)) throw new RangeError(`bench: ${entry} is missing (npm run build)`);
  return pathToFileURL(entry).href;
}

/** A worker thread issuing the vCPU's KVM_RUN, so that the main thread's event loop stays free to relay. */
class VcpuWorker {
  readonly #worker: Worker;
  #failure: unknown;
  readonly #exited: Promise<void>;

  constructor(data: VcpuWorkerData) {
    const source = `const wt = require('node:worker_threads');\n` +
      `import(wt.workerData.library).then((lib) => (${vcpuWorkerMain.toString()})(wt, require('node:fs'), lib));`;
    this.#worker = new Worker(source, { eval: true, workerData: { ...data, library: builtLibraryUrl() } });
    this.#worker.on('error', (error) => { this.#failure ??= error; });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
  }

  /** One round in the worker; resolves with each iteration's latency (TSC cycles). */
  round(iterations: number): Promise<Float64Array> {
    return new Promise((resolve, reject) => {
      const onMessage = (total: Float64Array): void => {
        this.#worker.off('error', onError);
        resolve(total);
      };
      const onError = (error: unknown): void => {
        this.#worker.off('message', onMessage);
        reject(asError(error));
      };
      if (this.#failure !== undefined) {
        onError(this.#failure);
        return;
      }
      this.#worker.once('message', onMessage);
      this.#worker.once('error', onError);
      this.#worker.postMessage({ iterations });
    });
  }

  /** Asks the worker to unmap and exit, and waits for it. */
  async stop(): Promise<void> {
    this.#worker.postMessage({});
    await this.#exited;
  }
}

/**
 * The JavaScript relay: kicker → the device's eventfd → Node (JsRelay, main thread) → the vector's
 * eventfd → KVM irqfd → MSI route → LAPIC → the vCPU, whose KVM_RUN blocks a worker thread. ns per op
 * is the mean latency from the device eventfd write to the handler's first instruction (TSC stamps).
 */
export function msiRelaySide(sys: Syscalls, cBinary: string): Side {
  const rig: Partial<RelayRig> = {};
  let relay: JsRelay | undefined;
  let worker: VcpuWorker | undefined;
  const teardown = async (): Promise<void> => {
    const stopping = { relay, worker };
    worker = relay = undefined;
    await closeRelayRig(sys, rig, async () => {
      await stopping.worker?.stop();
      await stopping.relay?.stop();
    });
  };
  return {
    setup: async () => {
      try {
        const { guest, device, deviceEventfd, kicker } = buildRelayRig(sys, cBinary, rig);
        relay = new JsRelay(deviceEventfd, device.eventfd);
        const runSize = sys.ioctl(guest.vm.kvmFd, 'KVM_GET_VCPU_MMAP_SIZE');
        worker = new VcpuWorker({
          vcpuFd: guest.vcpu.fd, runSize, goFd: kicker.goFd, kickFd: kicker.kickFd, lowFd: guest.lowFd,
          tscOffset: guest.tscOffset, page: Number(PAGE),
        });
      } catch (error) {
        await teardown();
        throw error;
      }
    },
    round: async (n) => {
      const cycles = await worker!.round(n);
      if (relay!.error !== undefined) throw asError(relay!.error);
      return rig.kicker!.toNs(medianOf(cycles));
    },
    teardown,
  };
}
