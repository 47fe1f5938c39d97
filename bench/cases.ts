/**
 * The benchmark cases: each one drives the library on a VM it keeps for every round, beside a case of the
 * C baseline (bench/c/kvm-bench.c) that keeps its own VM with the same slot population.
 */
import { readFileSync } from 'node:fs';
import {
  BarMapper, KvmVcpu, KvmVm, MmioDispatcher, PROT, RegionAccess, planBarMappings, realSyscalls,
  type DeviceDescription, type GuestBarHost, type HostMapping, type PlannedBar, type RegionDescription, type Syscalls,
  type VfioDeviceHandle,
} from 'vfio-bars';
import { msiRelaySide, msiRelayThreadSide, msiSide } from './irq-cases.js';

const real = realSyscalls();
export const PAGE = BigInt(real.pageSize());
const BASE = 0x1_0000_0000n;
const MOVED = 0x2_0000_0000n;
/** Where the 6-BAR plan's 32-bit BARs sit. */
const BELOW_4G = 0xc000_0000n;
/** The trapped device range (no slot there) and the reset-vector page of the trapped-access guest. */
const MMIO_GPA = 0x8000n;
const RESET_PAGE = 0xffff_f000n;

/** What a case measures, which decides how its ratio is judged. */
export type CaseKind = 'kernel' | 'user-space' | 'trapped';

/** One side (library or C) of a case: set up once, timed rounds, torn down. */
export interface Side {
  setup(): void | Promise<void>;
  /** One timed round of `iterations`; returns ns per operation. */
  round(iterations: number): number | Promise<number>;
  teardown(): void | Promise<void>;
}

export interface BenchCase {
  readonly id: string;
  readonly name: string;
  readonly kind: CaseKind;
  /** The conditions both sides run under, printed beside the figure. */
  readonly conditions: string;
  readonly iterations: number;
  /** Operations timed per iteration (a BAR move moves each of its slots), 1 when absent. */
  readonly opsPerIteration?: number;
  /** The C program's case and slot count. */
  readonly c: { readonly case: string; readonly slots: number };
  /** The calls the C program makes per iteration (by construction), keyed as countingSyscalls counts them. */
  readonly cCalls: Readonly<Record<string, number>>;
  /** Goal for the library/C ratio of medians, when there is one. */
  readonly target?: number;
  /** Run both sides' calling threads on this CPU (slot changes: their kernel cost depends on the CPU). */
  readonly cpu?: number;
  /** The library side, making every system call through `sys`; `cBinary` is the compiled C program. */
  readonly lib: (sys: Syscalls, cBinary: string) => Side;
}

/** Times `iterations` calls of `fn` in ns per call. */
export function time(iterations: number, fn: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / iterations;
}

export function rssKiB(): number {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(match?.[1] ?? 0);
}

function hostMemory(sys: Syscalls, size: bigint): HostMapping {
  const fd = sys.memfdCreate('bench', 0);
  try {
    sys.ftruncate(fd, size);
    return sys.mmap(fd, 0n, size, PROT.READ | PROT.WRITE);
  } finally {
    sys.close(fd);
  }
}

/** A device handle over one memfd, one region per BAR. */
function memfdDevice(sys: Syscalls, description: DeviceDescription, fileSize: bigint): VfioDeviceHandle & { close(): void } {
  const fd = sys.memfdCreate('bench-bars', 0);
  sys.ftruncate(fd, fileSize);
  return {
    bdf: 'bench', fd, syscalls: sys, dma: undefined, iommuMode: 'noiommu',
    describe: () => description, close: () => sys.close(fd),
  };
}

function barsDescription(bars: number, regionSize: bigint): DeviceDescription {
  return {
    bdf: 'bench', flags: 3, numRegions: bars, numIrqs: 0, irqs: [],
    regions: Array.from({ length: bars }, (_, i) => ({
      index: i, flags: 7, size: regionSize, offset: BigInt(i) * regionSize, capabilities: [],
    })),
    // One BAR is 64-bit (it sits above 4 GiB); several are 32-bit, each its own register.
    bars: Array.from({ length: bars }, (_, i) => ({
      index: i, kind: 'memory' as const, is64Bit: bars === 1, prefetchable: false, address: 0n,
    })),
  };
}

/** One BAR of `mappings` page-sized sparse areas, every other page: `mappings` slots, as the C case lays them out. */
function sparseDescription(mappings: number): DeviceDescription {
  const size = BigInt(2 * mappings) * PAGE;
  const areas = Array.from({ length: mappings }, (_, i) => ({ offset: BigInt(2 * i) * PAGE, size: PAGE }));
  const description = barsDescription(1, size);
  const region: RegionDescription = {
    index: 0, flags: 0xf, size, offset: 0n, capabilities: [{ kind: 'sparse-mmap', id: 1, version: 1, areas }],
  };
  return { ...description, regions: [region] };
}

/** No-op: re-setting a slot to the address it has (KVM compares and returns 0). */
function noopSide(sys: Syscalls): Side {
  let vm: KvmVm | undefined;
  let mem: HostMapping | undefined;
  let slot = 0;
  return {
    setup: () => {
      mem = hostMemory(sys, PAGE);
      vm = KvmVm.create({ syscalls: sys });
      slot = vm.addSlot({ guestPhysAddr: BASE, memorySize: PAGE, userspaceAddr: mem.address });
    },
    round: (n) => time(n, () => vm!.moveSlot(slot, BASE)),
    teardown: () => {
      vm?.close();
      if (mem) sys.munmap(mem);
    },
  };
}

function addDeleteSide(sys: Syscalls): Side {
  let vm: KvmVm | undefined;
  let mem: HostMapping | undefined;
  return {
    setup: () => {
      mem = hostMemory(sys, PAGE);
      vm = KvmVm.create({ syscalls: sys });
    },
    round: (n) => time(n, () => vm!.removeSlot(vm!.addSlot({ guestPhysAddr: BASE, memorySize: PAGE, userspaceAddr: mem!.address }))),
    teardown: () => {
      vm?.close();
      if (mem) sys.munmap(mem);
    },
  };
}

/** A BAR of `mappings` slots moved back and forth; ns per slot moved. */
function moveSide(sys: Syscalls, mappings: number): Side {
  let vm: KvmVm | undefined;
  let device: ReturnType<typeof memfdDevice> | undefined;
  let mapper: BarMapper | undefined;
  let atMoved = false;
  return {
    setup: () => {
      const description = sparseDescription(mappings);
      device = memfdDevice(sys, description, description.regions[0]!.size);
      vm = KvmVm.create({ syscalls: sys });
      mapper = new BarMapper(device, vm, { hugePfnAlign: false });
      mapper.map(planBarMappings(description, { pageSize: PAGE, barAddresses: { 0: BASE } }));
    },
    round: (n) => time(n, () => {
      atMoved = !atMoved;
      mapper!.move(0, atMoved ? MOVED : BASE);
    }) / mappings,
    teardown: () => {
      mapper?.unmapAll();
      vm?.close();
      device?.close();
    },
  };
}

function mapUnmapSide(sys: Syscalls): Side {
  let vm: KvmVm | undefined;
  let device: ReturnType<typeof memfdDevice> | undefined;
  let mapper: BarMapper | undefined;
  let plan: ReturnType<typeof planBarMappings> | undefined;
  return {
    setup: () => {
      const description = barsDescription(6, 4n * PAGE);
      device = memfdDevice(sys, description, 24n * PAGE);
      vm = KvmVm.create({ syscalls: sys });
      mapper = new BarMapper(device, vm, { hugePfnAlign: false });
      const addresses = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [i, BELOW_4G + BigInt(i) * 0x10_0000n]));
      plan = planBarMappings(description, { pageSize: PAGE, barAddresses: addresses });
    },
    round: (n) => time(n, () => {
      mapper!.map(plan!);
      mapper!.unmapAll();
    }),
    teardown: () => {
      vm?.close();
      device?.close();
    },
  };
}

/** `slots` slots registered (every other page); the last one moved back and forth. */
function underLoadSide(sys: Syscalls, slots: number): Side {
  let vm: KvmVm | undefined;
  let mem: HostMapping | undefined;
  let atMoved = false;
  const last = slots - 1;
  const lastGpa = BASE + 2n * BigInt(last) * PAGE;
  return {
    setup: () => {
      mem = hostMemory(sys, PAGE);
      vm = KvmVm.create({ syscalls: sys });
      for (let s = 0; s < slots; s++) {
        vm.addSlot({ guestPhysAddr: BASE + 2n * BigInt(s) * PAGE, memorySize: PAGE, userspaceAddr: mem.address });
      }
    },
    round: (n) => time(n, () => {
      atMoved = !atMoved;
      vm!.moveSlot(last, atMoved ? MOVED : lastGpa);
    }),
    teardown: () => {
      vm?.close();
      if (mem) sys.munmap(mem);
    },
  };
}

/**
 * The trapped-access guest, 16-bit real mode from the reset vector (no register setup needed):
 * at 0xfffffff0 `jmp 0xf000`; at 0xf000 `mov eax, [0x8000]; mov [0x8004], eax; jmp 0xf000`.
 * Every access exits to the VMM: one MMIO read, one MMIO write, forever. bench/c/kvm-bench.c runs the same bytes.
 */
export function trappedProgram(): { loop: Buffer; reset: Buffer } {
  return {
    loop: Buffer.from([0x66, 0xa1, 0x00, 0x80, 0x66, 0xa3, 0x04, 0x80, 0xeb, 0xf6]),
    reset: Buffer.from([0xe9, 0x0d, 0xf0]),
  };
}

/**
 * A vCPU loops MMIO reads and writes to a trapped page; each exit goes through the library's dispatcher
 * (MmioDispatcher.handleMmio → RegionAccess → pread/pwrite of a memfd standing in for BAR0) and back.
 */
function trappedSide(sys: Syscalls): Side {
  let vm: KvmVm | undefined;
  let vcpu: KvmVcpu | undefined;
  let code: HostMapping | undefined;
  let device: ReturnType<typeof memfdDevice> | undefined;
  let dispatcher: MmioDispatcher | undefined;
  return {
    setup: () => {
      const description = barsDescription(1, PAGE);
      device = memfdDevice(sys, description, PAGE);
      const plan = planBarMappings(description, { pageSize: PAGE, barAddresses: { 0: MMIO_GPA } });
      const planned: PlannedBar | undefined = plan.bars[0];
      // The BAR is placed but given no slot: every access to it is trapped, as a `hole` or an unaligned BAR's is.
      const host: GuestBarHost = { plannedBar: () => planned, move: () => undefined, setDecode: () => undefined };
      dispatcher = new MmioDispatcher(host, new RegionAccess(device, description), undefined, [0], 'bench');
      vm = KvmVm.create({ syscalls: sys });
      code = hostMemory(sys, PAGE);
      const program = trappedProgram();
      const bytes = new Uint8Array(code.view!);
      bytes.set(program.loop, 0);
      bytes.set(program.reset, 0xff0);
      vm.addSlot({ guestPhysAddr: RESET_PAGE, memorySize: PAGE, userspaceAddr: code.address });
      vcpu = KvmVcpu.create(vm);
    },
    round: (n) => time(n, () => {
      const exit = vcpu!.run();
      if (exit.kind !== 'mmio' || !dispatcher!.handleMmio(exit.address, vcpu!.mmioData().subarray(0, exit.length), exit.isWrite)) {
        throw new RangeError(`trapped-access guest: unexpected exit ${exit.kind}`);
      }
    }),
    teardown: () => {
      vcpu?.close();
      vm?.close();
      if (code) sys.munmap(code);
      device?.close();
    },
  };
}

const SAME_VM = 'one VM per side, kept across rounds';
/**
 * Every case runs both sides' calling threads (and the threads and kicker processes they start) on CPU 0.
 * A slot change waits for an SRCU grace period (kvm_swap_active_memslots) whose cost differed 5-10x between
 * this machine's two CPUs, for C and Node alike, and interrupt latency depends on where the vCPU and the
 * device run: unpinned, the ratios measured the scheduler (an MSI ratio of 0.28 in one run, 1.20 in the next).
 */
const SLOT_CPU = 0;
const SAME_VM_CPU = `${SAME_VM}, both on CPU ${SLOT_CPU}`;

/** Every like-for-like case, in run order. `scale` multiplies the iteration counts (the smoke test's is tiny). */
export function benchCases(scale = 1): BenchCase[] {
  const n = (count: number): number => Math.max(2, Math.round(count * scale));
  const oneSet = { setUserMemoryRegion: 1 };
  return [
    {
      id: 'noop', cpu: SLOT_CPU, name: 'no-op KVM_SET_USER_MEMORY_REGION', kind: 'user-space', iterations: n(50_000), target: 1.25,
      c: { case: 'noop', slots: 1 }, cCalls: oneSet, conditions: `${SAME_VM_CPU}; 1 slot, re-set unchanged`, lib: noopSide,
    },
    {
      id: 'add-delete', cpu: SLOT_CPU, name: 'add + delete slot', kind: 'kernel', iterations: n(3_000),
      c: { case: 'add-delete', slots: 0 }, cCalls: { setUserMemoryRegion: 2 },
      conditions: `${SAME_VM_CPU}; empty VM, 1-page slot added then deleted`, lib: addDeleteSide,
    },
    {
      id: 'move-1', cpu: SLOT_CPU, name: 'BAR move, 1 mapping (per slot)', kind: 'kernel', iterations: n(3_000), target: 1.05,
      c: { case: 'move', slots: 1 }, opsPerIteration: 1, cCalls: oneSet,
      conditions: `${SAME_VM_CPU}; 1 slot, moved 4 GiB ↔ 8 GiB`, lib: (sys) => moveSide(sys, 1),
    },
    {
      id: 'move-4', cpu: SLOT_CPU, name: 'BAR move, 4 mappings (per slot)', kind: 'kernel', iterations: n(1_500), target: 1.05,
      c: { case: 'move', slots: 4 }, opsPerIteration: 4, cCalls: { setUserMemoryRegion: 4 },
      conditions: `${SAME_VM_CPU}; 4 slots of one BAR, moved together`, lib: (sys) => moveSide(sys, 4),
    },
    {
      id: 'map-unmap', cpu: SLOT_CPU, name: 'map + unmap of a 6-BAR plan', kind: 'kernel', iterations: n(600),
      c: { case: 'map-unmap', slots: 6 }, cCalls: { mmap: 6, setUserMemoryRegion: 12, munmap: 6 },
      conditions: `${SAME_VM_CPU}; 6 memfd BARs of 4 pages: mmap + slot, then slot delete + munmap`, lib: mapUnmapSide,
    },
    {
      id: 'move-100', cpu: SLOT_CPU, name: 'move with 100 slots registered', kind: 'kernel', iterations: n(1_000),
      c: { case: 'move-under-load', slots: 100 }, cCalls: oneSet,
      conditions: `${SAME_VM_CPU}; 100 slots, the last one moved`, lib: (sys) => underLoadSide(sys, 100),
    },
    {
      id: 'move-10000', cpu: SLOT_CPU, name: 'move with 10 000 slots registered', kind: 'kernel', iterations: n(1_000), target: 1.05,
      c: { case: 'move-under-load', slots: 10_000 }, cCalls: oneSet,
      conditions: `${SAME_VM_CPU}; 10 000 slots, the last one moved`, lib: (sys) => underLoadSide(sys, 10_000),
    },
    {
      id: 'trapped', cpu: SLOT_CPU, name: 'trapped MMIO access round trip', kind: 'trapped', iterations: n(20_000), target: 1.3,
      c: { case: 'trapped', slots: 1 }, cCalls: { 'ioctl KVM_RUN': 1, pread: 0.5, pwrite: 0.5 },
      conditions: `${SAME_VM_CPU}; 1 vCPU, real mode, alternating 4-byte MMIO read/write; ` +
        'exit → MmioDispatcher → pread/pwrite of a memfd → KVM_RUN',
      lib: trappedSide,
    },
    {
      id: 'msi', cpu: SLOT_CPU, name: 'MSI latency, eventfd → irqfd → MSI route → guest', kind: 'kernel', iterations: n(300), target: 1.1,
      c: { case: 'msi', slots: 3 }, cCalls: { 'ioctl KVM_RUN': 1 },
      conditions: [
        `${SAME_VM_CPU} (the kicker too); a halted real-mode vCPU with the in-kernel LAPIC.`,
        'Library: MsixInterrupts in irqfd delivery (GsiRouter: the x86 irqchip pins + the vector\'s MSI route;',
        'VFIO\'s SET_IRQS stood in); C: the same KVM_SET_GSI_ROUTING table and KVM_IRQFD.',
        'A kicker process writes the vector\'s eventfd 100 µs after each KVM_RUN; KVM injects from the eventfd wakeup.',
        'Latency: TSC at the eventfd write → TSC the guest\'s handler reads first (the exit that then reports it is',
        'not timed); a round\'s figure is the median of its 300',
      ].join(' '),
      lib: msiSide,
    },
    {
      id: 'msi-relay', cpu: SLOT_CPU, name: 'MSI latency, JavaScript relay on the event loop', kind: 'user-space',
      iterations: n(300), c: { case: 'msi-relay', slots: 3 }, cCalls: { 'ioctl KVM_RUN': 1, read: 1, write: 1 },
      conditions: `${SAME_VM_CPU}; as the MSI case, but the kicker writes a device eventfd with no irqfd on it. Library: ` +
        'the vCPU\'s KVM_RUN on a worker thread; on the main thread fs.read of the device eventfd (libuv thread ' +
        'pool) completes on the event loop, which writes the vector\'s eventfd. C: KVM_RUN on the main thread, ' +
        'a pthread blocked in read(2) writes it. Latency as above, from the device eventfd write',
      lib: msiRelaySide,
    },
    {
      id: 'msi-relay-thread', cpu: SLOT_CPU, name: 'MSI latency, JavaScript relay on a thread of its own', kind: 'user-space',
      iterations: n(300), c: { case: 'msi-relay', slots: 3 }, cCalls: { 'ioctl KVM_RUN': 1, read: 1, write: 1 },
      conditions: `${SAME_VM_CPU}; as the relay above, but shaped like the C relay: KVM_RUN on the main thread, ` +
        'a worker blocked in fs.readSync of the device eventfd does fs.writeSync of the vector\'s eventfd',
      lib: msiRelayThreadSide,
    },
  ];
}

/**
 * `sys` with every call counted (ioctls by request name) and the time spent inside the calls summed, for
 * an untimed pass that shows what the library asks of the kernel per operation, and how long it waits there.
 */
export function countingSyscalls(sys: Syscalls): { syscalls: Syscalls; counts: Map<string, number>; insideNs: { total: number } } {
  const counts = new Map<string, number>();
  const insideNs = { total: 0 };
  const syscalls = new Proxy(sys, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]): unknown => {
        const key = property === 'ioctl' ? `ioctl ${String(args[1])}` : property;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        const t0 = process.hrtime.bigint();
        try {
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        } finally {
          insideNs.total += Number(process.hrtime.bigint() - t0);
        }
      };
    },
  });
  return { syscalls, counts, insideNs };
}
