/**
 * A KVM vCPU with its shared `kvm_run` page: create, run, decode the exit. Architecture-specific
 * register setup lives in the probe programs (probe-x86.ts, probe-arm64.ts).
 */
import { KVM_EXIT } from '../uapi/index.js';
import { PROT, type HostMapping } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';
import { KvmError } from './errors.js';
import type { KvmVm } from './vm.js';

/** struct kvm_run offsets of the exit fields we decode (same on x86-64 and arm64). */
const RUN = { immediateExit: 1, exitReason: 8, io: { direction: 32, size: 33, port: 34, count: 36, dataOffset: 40 }, mmio: { physAddr: 32, data: 40, len: 48, isWrite: 52 } } as const;

export type VcpuExit =
  | { readonly kind: 'io'; readonly direction: 'in' | 'out'; readonly port: number; readonly size: number; readonly data: bigint }
  | { readonly kind: 'mmio'; readonly address: bigint; readonly isWrite: boolean; readonly length: number; readonly data: bigint }
  | { readonly kind: 'hlt' }
  | { readonly kind: 'shutdown' }
  | { readonly kind: 'other'; readonly reason: number };

export class KvmVcpu implements Disposable {
  readonly fd: number;
  readonly #vm: KvmVm;
  readonly #run: HostMapping;
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

  /** One KVM_RUN; returns the decoded exit. */
  run(): VcpuExit {
    this.#vm.syscalls.ioctl(this.fd, 'KVM_RUN', 0);
    return this.#decodeExit();
  }

  /**
   * Lets KVM finish the instruction of the last exit (an MMIO read gets its data, a write retires)
   * without running the guest further: KVM_RUN with `immediate_exit` set returns EINTR right after.
   * Needed before re-pointing the PC, or the completion would land on the new program.
   */
  completePendingExit(): void {
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

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#vm.syscalls.munmap(this.#run);
    this.#vm.syscalls.close(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
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

function readLittleEndian(view: DataView, offset: number, size: number): bigint {
  let value = 0n;
  for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(view.getUint8(offset + i));
  return value;
}
