/* KvmVcpu: a KVM vCPU (documented on the class). */
import { KVM_EXIT, KVM_SYSTEM_EVENT, encodeOneReg } from '../uapi/index.js';
import { PROT, type HostMapping } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';
import { hex } from '../errors.js';
import { KvmError } from './errors.js';
import { HostScratch } from './scratch.js';
import type { KvmVm } from './vm.js';

/** struct kvm_run offsets of the exit fields we decode (same on x86-64 and arm64). */
const RUN = {
  immediateExit: 1,
  exitReason: 8,
  io: { direction: 32, size: 33, port: 34, count: 36, dataOffset: 40 },
  mmio: { physAddr: 32, data: 40, len: 48, isWrite: 52 },
  systemEvent: { type: 32, ndata: 36, data: 40, maxData: 16 },
} as const;

/** What a KVM_EXIT_SYSTEM_EVENT asks the VMM to do (arm64: the guest called PSCI SYSTEM_OFF / SYSTEM_RESET). */
export type SystemEventKind = 'shutdown' | 'reset' | 'crash' | 'unknown';

/** Why KVM_RUN returned, decoded from `kvm_run` (see {@link KvmVcpu.run}). */
export type VcpuExit =
  /** KVM_EXIT_IO (x86 port I/O). */
  | {
    /** Port I/O. */ readonly kind: 'io';
    /** `'out'`: the guest wrote `data`; `'in'`: it reads. */ readonly direction: 'in' | 'out';
    /** The I/O port. */ readonly port: number;
    /** Access size in bytes. */ readonly size: number;
    /** The value written (for `'out'`). */ readonly data: bigint;
  }
  /** KVM_EXIT_MMIO: an access no slot backs (answer reads with `answerMmioRead` or `mmioData()`). */
  | {
    /** MMIO. */ readonly kind: 'mmio';
    /** Guest physical address of the access. */ readonly address: bigint;
    /** Whether the guest writes. */ readonly isWrite: boolean;
    /** Access size in bytes (1-8). */ readonly length: number;
    /** The value written (for a write), little-endian. */ readonly data: bigint;
  }
  /** KVM_EXIT_HLT: the guest halted. */
  | {
    /** Halted. */ readonly kind: 'hlt';
  }
  /** KVM_EXIT_SHUTDOWN (x86 triple fault). */
  | {
    /** Shut down. */ readonly kind: 'shutdown';
  }
  /** `type` is the raw KVM_SYSTEM_EVENT_* value; `data` its `ndata` words (e.g. the PSCI function id). */
  | {
    /** KVM_EXIT_SYSTEM_EVENT. */ readonly kind: 'system-event';
    /** What the guest asks for. */ readonly event: SystemEventKind;
    /** The raw KVM_SYSTEM_EVENT_* value. */ readonly type: number;
    /** The event's data words. */ readonly data: readonly bigint[];
  }
  /** Any other exit reason. */
  | {
    /** Not decoded. */ readonly kind: 'other';
    /** The raw KVM_EXIT_* value. */ readonly reason: number;
  };

/**
 * A KVM vCPU with its shared `kvm_run` page: create, run, decode the exit, answer an MMIO read in place,
 * get and set registers through KVM_{GET,SET}_ONE_REG. Boot-time arm64 setup is in arm64-vcpu.ts; the
 * probe programs (probe-x86.ts, probe-arm64.ts) set up their own tiny guests.
 *
 * Not thread-shared: create and run it on one thread. A VMM that runs vCPUs on worker threads issues KVM_RUN
 * on the vCPU fd there itself (see the README, Threads).
 *
 * @example
 * using vcpu = KvmVcpu.create(vm, 0);
 * for (;;) {
 *   const exit = vcpu.run();
 *   if (exit.kind === 'mmio') guest.handleMmio(exit.address, vcpu.mmioData().subarray(0, exit.length), exit.isWrite);
 *   else if (exit.kind === 'hlt' || exit.kind === 'shutdown') break;
 * }
 */
export class KvmVcpu implements Disposable {
  /** The vCPU fd. */
  readonly fd: number;
  readonly #vm: KvmVm;
  readonly #run: HostMapping;
  /** For KVM_{GET,SET}_ONE_REG, which take the host address of the value; mapped on first use. */
  #scratch: HostScratch | undefined;
  /** The MMIO read the guest is waiting on (set by `run`, cleared by `answerMmioRead` or the next run). */
  #pendingRead: { address: bigint; length: number } | undefined;
  #closed = false;
  #mmioData: Uint8Array | undefined;

  private constructor(vm: KvmVm, fd: number, run: HostMapping) {
    this.#vm = vm;
    this.fd = fd;
    this.#run = run;
  }

  /** KVM_CREATE_VCPU + mmap of kvm_run. vCPU ids cannot be reused while the VM lives. */
  static create(vm: KvmVm, id = 0): KvmVcpu {
    const sys = vm.syscalls;
    const fd = sys.ioctl(vm.fd, 'KVM_CREATE_VCPU', id);
    try {
      const runSize = sys.ioctl(vm.kvmFd, 'KVM_GET_VCPU_MMAP_SIZE');
      const run = sys.mmap(fd, 0n, BigInt(runSize), PROT.READ | PROT.WRITE);
      return new KvmVcpu(vm, fd, run);
    } catch (error) {
      sys.close(fd);
      throw error;
    }
  }

  /**
   * One KVM_RUN; returns the decoded exit. For an MMIO read, call {@link answerMmioRead} before the next
   * run (otherwise the guest's load completes with whatever the run page holds, zeros by default).
   * @throws SystemError from KVM_RUN (EINTR when a signal arrived, EFAULT on a vanished mapping...).
   */
  run(): VcpuExit {
    this.#assertOpen();
    this.#pendingRead = undefined;
    this.#vm.syscalls.ioctl(this.fd, 'KVM_RUN', 0);
    const exit = this.#decodeExit();
    if (exit.kind === 'mmio' && !exit.isWrite) this.#pendingRead = { address: exit.address, length: exit.length };
    return exit;
  }

  /**
   * Answers the guest's pending MMIO read in place: writes `value` (little-endian, the exit's `length`
   * bytes) into `kvm_run.mmio.data`, where KVM picks it up to finish the load on the next KVM_RUN.
   * @throws KvmError `NO_PENDING_READ` when the last exit was not an MMIO read; RangeError when `value`
   *   does not fit the access width.
   * @example
   * const exit = vcpu.run();
   * if (exit.kind === 'mmio' && !exit.isWrite) vcpu.answerMmioRead(uart.read(exit.address - UART_BASE));
   */
  answerMmioRead(value: bigint): void {
    this.#assertOpen();
    const pending = this.#pendingRead;
    if (!pending) throw new KvmError('no MMIO read is waiting for an answer', { code: 'NO_PENDING_READ' });
    const bytes = Math.min(pending.length, 8);
    if (value < 0n || value >= 1n << BigInt(8 * bytes)) {
      throw new RangeError(`MMIO read answer ${hex(value)} does not fit ${bytes} bytes (read of ${hex(pending.address)})`);
    }
    const run = this.#view();
    for (let i = 0; i < bytes; i++) run.setUint8(RUN.mmio.data + i, Number((value >> BigInt(8 * i)) & 0xffn));
    this.#pendingRead = undefined;
  }

  /**
   * KVM_SET_ONE_REG: sets a 64-bit register by its KVM id (e.g. `ARM64_CORE_REG.pc`).
   * @throws SystemError (ENOENT for an unknown id, EINVAL for a bad value, ENOEXEC before KVM_ARM_VCPU_INIT).
   */
  setOneReg(id: bigint, value: bigint): void {
    const scratch = this.#scratchPage();
    this.#vm.syscalls.ioctl(this.fd, 'KVM_SET_ONE_REG', encodeOneReg(id, scratch.put(0, value)));
  }

  /** KVM_GET_ONE_REG of a 64-bit register. @throws SystemError as {@link setOneReg}. */
  getOneReg(id: bigint): bigint {
    const scratch = this.#scratchPage();
    this.#vm.syscalls.ioctl(this.fd, 'KVM_GET_ONE_REG', encodeOneReg(id, scratch.put(0, 0n)));
    return scratch.get(0);
  }

  /**
   * Lets KVM finish the instruction of the last exit (an MMIO read gets its data, a write retires)
   * without running the guest further: KVM_RUN with `immediate_exit` set returns EINTR right after.
   * Needed before re-pointing the PC, or the completion would land on the new program.
   */
  completePendingExit(): void {
    this.#pendingRead = undefined;
    const run = this.#view();
    run.setUint8(RUN.immediateExit, 1);
    try {
      this.#vm.syscalls.ioctl(this.fd, 'KVM_RUN', 0);
    } catch (error) {
      if (!(error instanceof SystemError && error.code === 'EINTR')) throw error;
    } finally {
      run.setUint8(RUN.immediateExit, 0);
    }
  }

  /**
   * The 8 data bytes of the last MMIO exit in the shared kvm_run page: a write's data, and where a
   * VMM puts a read's answer (its first `length` bytes) before the next `run()`. Valid until `close`.
   * @example
   * const exit = vcpu.run();
   * if (exit.kind === 'mmio') device.handleMmio(exit.address, vcpu.mmioData().subarray(0, exit.length), exit.isWrite);
   */
  mmioData(): Uint8Array {
    if (!this.#run.view) throw new KvmError('kvm_run is not mapped', { code: 'NO_RUN_PAGE' });
    this.#mmioData ??= new Uint8Array(this.#run.view, RUN.mmio.data, 8);
    return this.#mmioData;
  }

  /** Unmaps the run page and closes the vCPU fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#scratch?.close();
    this.#vm.syscalls.munmap(this.#run);
    this.#vm.syscalls.close(this.fd);
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvmError('vCPU is closed', { code: 'CLOSED' });
  }

  #scratchPage(): HostScratch {
    this.#assertOpen();
    this.#scratch ??= HostScratch.create(this.#vm.syscalls, 'vfio-bars-vcpu-regs');
    return this.#scratch;
  }

  #view(): DataView {
    if (!this.#run.view) throw new KvmError('kvm_run is not mapped', { code: 'NO_RUN_PAGE' });
    return new DataView(this.#run.view);
  }

  #decodeExit(): VcpuExit {
    const run = this.#view();
    const reason = run.getUint32(RUN.exitReason, true);
    switch (reason) {
      case KVM_EXIT.IO:
        return decodeIo(run);
      case KVM_EXIT.MMIO:
        return decodeMmio(run);
      case KVM_EXIT.HLT:
        return { kind: 'hlt' };
      case KVM_EXIT.SHUTDOWN:
        return { kind: 'shutdown' };
      case KVM_EXIT.SYSTEM_EVENT:
        return decodeSystemEvent(run);
      default:
        return { kind: 'other', reason };
    }
  }
}

function decodeIo(run: DataView): VcpuExit {
  const size = run.getUint8(RUN.io.size);
  const dataOffset = Number(run.getBigUint64(RUN.io.dataOffset, true));
  return {
    kind: 'io',
    direction: run.getUint8(RUN.io.direction) === 1 ? 'out' : 'in',
    port: run.getUint16(RUN.io.port, true),
    size,
    data: readLittleEndian(run, dataOffset, size),
  };
}

function decodeMmio(run: DataView): VcpuExit {
  const length = run.getUint32(RUN.mmio.len, true);
  return {
    kind: 'mmio',
    address: run.getBigUint64(RUN.mmio.physAddr, true),
    isWrite: run.getUint8(RUN.mmio.isWrite) !== 0,
    length,
    data: readLittleEndian(run, RUN.mmio.data, Math.min(length, 8)),
  };
}

const SYSTEM_EVENTS: Readonly<Record<number, SystemEventKind>> = {
  [KVM_SYSTEM_EVENT.SHUTDOWN]: 'shutdown',
  [KVM_SYSTEM_EVENT.RESET]: 'reset',
  [KVM_SYSTEM_EVENT.CRASH]: 'crash',
};

function decodeSystemEvent(run: DataView): VcpuExit {
  const type = run.getUint32(RUN.systemEvent.type, true);
  // ndata comes from the kernel; never trust it beyond the array it indexes.
  const ndata = Math.min(run.getUint32(RUN.systemEvent.ndata, true), RUN.systemEvent.maxData);
  const data: bigint[] = [];
  for (let i = 0; i < ndata; i++) data.push(run.getBigUint64(RUN.systemEvent.data + i * 8, true));
  return { kind: 'system-event', event: SYSTEM_EVENTS[type] ?? 'unknown', type, data };
}

function readLittleEndian(view: DataView, offset: number, size: number): bigint {
  let value = 0n;
  for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(view.getUint8(offset + i));
  return value;
}
