/* GuestMemoryProbe: read guest memory through a real vCPU (documented on the class). */
import { PROT, type HostMapping } from '../sys/syscalls.js';
import { hex } from '../errors.js';
import { KvmError } from './errors.js';
import { KvmVcpu, type VcpuExit } from './vcpu.js';
import type { KvmVm } from './vm.js';
import { X86_REPORT_PORT, setupX86, x86ReadProgram } from './probe-x86.js';
import { arm64ReadProgram, initArm64, setArm64Registers } from './probe-arm64.js';

/** What {@link GuestMemoryProbe.read} saw. */
export type ProbeResult =
  /** The guest read `value` at the address: memory (a slot) answered. */
  | {
    /** Memory answered. */ readonly kind: 'value';
    /** The value read (little-endian, `width` bytes). */ readonly value: bigint;
  }
  /** The guest's access to `address` left the guest as MMIO: no slot backs it, the VMM must emulate it. */
  | {
    /** The access exited. */ readonly kind: 'mmio';
    /** The guest physical address of the exit. */ readonly address: bigint;
    /** Whether the exiting access was a write. */ readonly isWrite: boolean;
  };

/** Options of {@link GuestMemoryProbe.create}. */
export interface ProbeOptions {
  /**
   * Guest physical address of the probe's code page. It and the page after it (the arm64 report
   * address) must not overlap the VM's other slots. Default 0x7ff00000 (below 2 GiB, 1 MiB aligned).
   */
  codeGpa?: bigint;
  /** vCPU id to create (ids cannot be reused while the VM lives). Default 0. */
  vcpuId?: number;
}

const MAX_EXITS_PER_READ = 8;

/**
 * `GuestMemoryProbe`: runs a tiny guest program on a real vCPU that reads guest-physical memory, so a
 * test or an operator (`vfio-bars map --verify`) can check that a KVM slot really exposes the device
 * memory at the GPA it claims. The value comes back through an exit the VMM sees (an x86 I/O port
 * write, an arm64 MMIO write); an access that hits no slot comes back as an MMIO exit at that address.
 *
 * @example
 * using probe = GuestMemoryProbe.create(vm);          // one vCPU and a page of code at 0x7ff00000
 * mapper.map(plan);
 * const result = probe.read(0x4000_0000n, 8);          // { kind: 'value', value } or { kind: 'mmio', address }
 */
export class GuestMemoryProbe implements Disposable {
  readonly #vm: KvmVm;
  readonly #vcpu: KvmVcpu;
  readonly #code: HostMapping;
  readonly #codeSlot: number;
  readonly #codeGpa: bigint;
  readonly #pageSize: bigint;
  #closed = false;

  private constructor(vm: KvmVm, vcpu: KvmVcpu, code: HostMapping, codeSlot: number, codeGpa: bigint) {
    this.#vm = vm;
    this.#vcpu = vcpu;
    this.#code = code;
    this.#codeSlot = codeSlot;
    this.#codeGpa = codeGpa;
    this.#pageSize = BigInt(vm.syscalls.pageSize());
  }

  /**
   * Creates the vCPU and registers one page of probe code. Undoes both on failure.
   *
   * @throws RangeError for a code GPA that is not page-aligned; KvmError from the slot or vCPU creation
   *   (`SLOTS_EXHAUSTED`, an errno name, `NO_RUN_PAGE`).
   */
  static create(vm: KvmVm, options: ProbeOptions = {}): GuestMemoryProbe {
    const sys = vm.syscalls;
    const pageSize = BigInt(sys.pageSize());
    const codeGpa = options.codeGpa ?? 0x7ff0_0000n;
    if (codeGpa % pageSize !== 0n) throw new RangeError(`probe code GPA ${hex(codeGpa)} is not page-aligned`);
    const code = mapAnonymousPage(vm, pageSize);
    let slot: number | undefined;
    try {
      slot = vm.addSlot({ guestPhysAddr: codeGpa, memorySize: pageSize, userspaceAddr: code.address });
      const vcpu = KvmVcpu.create(vm, options.vcpuId ?? 0);
      try {
        if (process.arch === 'arm64') initArm64(sys, vm.fd, vcpu.fd);
        return new GuestMemoryProbe(vm, vcpu, code, slot, codeGpa);
      } catch (error) {
        vcpu.close();
        throw error;
      }
    } catch (error) {
      if (slot !== undefined) vm.removeSlot(slot);
      sys.munmap(code);
      throw error;
    }
  }

  /**
   * Reads `width` bytes at guest physical `gpa` from inside the guest.
   *
   * @throws KvmError `CLOSED`, `PROBE_STUCK`, `PROBE_UNEXPECTED_EXIT`, `UNSUPPORTED_ARCH` (not x86-64 or arm64).
   */
  read(gpa: bigint, width: 4 | 8 = 4): ProbeResult {
    if (this.#closed) throw new KvmError('probe is closed', { code: 'CLOSED' });
    switch (process.arch) {
      case 'x64':
        return this.#readX86(gpa, width);
      case 'arm64':
        return this.#readArm64(gpa, width);
      default:
        throw new KvmError(`no probe program for ${process.arch}`, { code: 'UNSUPPORTED_ARCH' });
    }
  }

  /** Closes the vCPU, removes the code slot and unmaps the code page. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#vcpu.close();
    this.#vm.removeSlot(this.#codeSlot);
    this.#vm.syscalls.munmap(this.#code);
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #codeBytes(): Uint8Array {
    if (!this.#code.view) throw new KvmError('probe code page has no view', { code: 'NO_VIEW' });
    return new Uint8Array(this.#code.view);
  }

  #readX86(gpa: bigint, width: 4 | 8): ProbeResult {
    this.#codeBytes().set(x86ReadProgram(gpa, width));
    setupX86(this.#vm.syscalls, this.#vcpu.fd, this.#codeGpa);
    let value = 0n;
    for (let word = 0; word < width / 4; word++) {
      const exit = this.#vcpu.run();
      if (exit.kind === 'mmio') {
        this.#drainToHlt();
        return { kind: 'mmio', address: exit.address, isWrite: exit.isWrite };
      }
      if (exit.kind !== 'io' || exit.port !== X86_REPORT_PORT || exit.direction !== 'out') throw unexpectedExit(exit, gpa);
      value |= exit.data << BigInt(32 * word);
    }
    const last = this.#vcpu.run();
    if (last.kind !== 'hlt') throw unexpectedExit(last, gpa);
    return { kind: 'value', value };
  }

  /** Runs the rest of the x86 program (the unbacked load completes with zeros) so the vCPU ends at rest. */
  #drainToHlt(): void {
    for (let i = 0; i < MAX_EXITS_PER_READ; i++) {
      if (this.#vcpu.run().kind === 'hlt') return;
    }
    throw new KvmError('probe vCPU did not reach hlt', { code: 'PROBE_STUCK' });
  }

  #readArm64(gpa: bigint, width: 4 | 8): ProbeResult {
    const bytes = this.#codeBytes();
    bytes.set(arm64ReadProgram(width));
    const reportGpa = this.#codeGpa + this.#pageSize;
    const scratch = { address: this.#code.address, view: new DataView(bytes.buffer), offset: Number(this.#pageSize) - 8 };
    setArm64Registers(this.#vm.syscalls, this.#vcpu.fd, scratch, { pc: this.#codeGpa, x0: gpa, x2: reportGpa });
    for (let i = 0; i < MAX_EXITS_PER_READ; i++) {
      const exit = this.#vcpu.run();
      if (exit.kind !== 'mmio') throw unexpectedExit(exit, gpa);
      // Every exit leaves an instruction half-done; retire it before the next read re-points the PC.
      this.#vcpu.completePendingExit();
      if (exit.isWrite && exit.address === reportGpa) return { kind: 'value', value: exit.data };
      if (!exit.isWrite && exit.address === gpa) return { kind: 'mmio', address: exit.address, isWrite: false };
      throw unexpectedExit(exit, gpa);
    }
    throw new KvmError(`probe read of ${hex(gpa)} did not finish`, { code: 'PROBE_STUCK', guestPhysAddr: gpa });
  }
}

function mapAnonymousPage(vm: KvmVm, pageSize: bigint): HostMapping {
  const sys = vm.syscalls;
  const fd = sys.memfdCreate('vfio-bars-probe', 0);
  try {
    sys.ftruncate(fd, pageSize);
    return sys.mmap(fd, 0n, pageSize, PROT.READ | PROT.WRITE);
  } finally {
    sys.close(fd); // the mapping keeps the memory alive
  }
}

function unexpectedExit(exit: VcpuExit, gpa: bigint): KvmError {
  const detail = exit.kind === 'other' ? `exit reason ${exit.reason}` : `${exit.kind} exit`;
  return new KvmError(`probe read of ${hex(gpa)}: unexpected ${detail}`, { code: 'PROBE_UNEXPECTED_EXIT', guestPhysAddr: gpa });
}
