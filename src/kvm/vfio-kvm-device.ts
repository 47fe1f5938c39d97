/* KVM's VFIO pseudo-device (documented on KvmVfioDevice). */
import {
  KVM_CREATE_DEVICE_TEST, KVM_DEV_TYPE, KVM_DEV_VFIO, decodeCreateDevice, encodeCreateDevice, encodeDeviceAttr,
} from '../uapi/index.js';
import { PROT, type HostMapping, type Syscalls } from '../sys/syscalls.js';
import { realSyscalls } from '../sys/real-syscalls.js';
import { SystemError } from '../sys/system-error.js';
import { KvmError } from './errors.js';

/** What the pseudo-device needs of a VM: its fd and the syscalls it was made with (`KvmVm` has both). */
export interface KvmVmRef {
  /** The VM fd. */
  readonly fd: number;
  /** The kernel interface; default `realSyscalls()`. */
  readonly syscalls?: Syscalls;
}

/**
 * KVM's VFIO pseudo-device of one VM, with the group or device files added to it (each counted, so two
 * functions of one group add the group once and the last one to leave deletes it).
 *
 * Ownership: the VMM owns it. `close()` deletes every file still added and closes the device fd; a
 * `VfioDevice` closed after that finds nothing left to delete. The kernel keeps the pseudo-device itself
 * until the VM is destroyed, so files, not the fd, are what must not leak: a group left added stays busy.
 *
 * Why it exists: a VM that has VFIO devices tells KVM about their groups (legacy container path) or device files
 * (cdev path) through it: KVM then knows the VM does non-coherent DMA (x86 honours guest cache attributes) and,
 * on the cdev path, the device may only be bound to iommufd after it was added. `VfioDevice.open(bdf, { kvm })`
 * does the adding. The attribute's `addr` is the host address of an `__s32` fd; it points into one page of memfd
 * memory this object owns (never a JS Buffer, whose address is not ours to hand out), released with the object.
 *
 * @example
 * using kvmVfio = KvmVfioDevice.create(vm);   // one per VM
 * using nic = VfioDevice.open('0000:01:00.0', { context, kvm: kvmVfio });
 */
export class KvmVfioDevice implements Disposable {
  /** The fd KVM_CREATE_DEVICE returned. */
  readonly fd: number;
  /** The kernel interface it was made with. */
  readonly syscalls: Syscalls;
  readonly #scratch: HostMapping;
  readonly #slot: DataView;
  readonly #files = new Map<number, number>();
  /** True when the VMM created the pseudo-device: close() leaves its fd open. */
  readonly #adopted: boolean;
  #closed = false;

  private constructor(fd: number, syscalls: Syscalls, scratch: HostMapping, adopted: boolean) {
    this.fd = fd;
    this.syscalls = syscalls;
    this.#scratch = scratch;
    this.#slot = new DataView(scratch.view!, 0, 4);
    this.#adopted = adopted;
  }

  /**
   * Whether this VM's KVM offers the VFIO pseudo-device (`KVM_CREATE_DEVICE` with `KVM_CREATE_DEVICE_TEST`:
   * nothing is created). False when the kvm module was built without it (ENODEV).
   * @throws KvmError for any other refusal (EBADF on a bad VM fd, ...).
   */
  static supported(vm: KvmVmRef): boolean {
    const sys = vm.syscalls ?? realSyscalls();
    try {
      sys.ioctl(checkFd(vm.fd, 'vm.fd'), 'KVM_CREATE_DEVICE', encodeCreateDevice(KVM_DEV_TYPE.VFIO, KVM_CREATE_DEVICE_TEST));
      return true;
    } catch (error) {
      if (error instanceof SystemError && error.code === 'ENODEV') return false;
      throw wrap(error, 'KVM_CREATE_DEVICE (test)');
    }
  }

  /**
   * Creates the VFIO pseudo-device in `vm`. A VM has at most one (KVM answers EBUSY for a second).
   * @throws KvmError `NO_VFIO_DEVICE` when KVM lacks it (ENODEV), or the errno of the failing call.
   * @example
   * using vm = KvmVm.create();
   * using kvmVfio = KvmVfioDevice.create(vm);
   * using device = VfioDevice.open('0000:01:00.0', { kvm: kvmVfio });
   */
  static create(vm: KvmVmRef): KvmVfioDevice {
    const sys = vm.syscalls ?? realSyscalls();
    const vmFd = checkFd(vm.fd, 'vm.fd');
    const scratch = mapScratchPage(sys);
    let fd: number;
    try {
      const request = encodeCreateDevice(KVM_DEV_TYPE.VFIO);
      sys.ioctl(vmFd, 'KVM_CREATE_DEVICE', request);
      fd = decodeCreateDevice(request).fd;
    } catch (error) {
      sys.munmap(scratch);
      if (error instanceof SystemError && error.code === 'ENODEV') {
        const details = { code: 'NO_VFIO_DEVICE', errno: error.errno, ioctl: 'KVM_CREATE_DEVICE' };
        throw new KvmError('KVM has no VFIO pseudo-device (kvm built without CONFIG_KVM_VFIO)', details, { cause: error });
      }
      throw wrap(error, 'KVM_CREATE_DEVICE');
    }
    return new KvmVfioDevice(fd, sys, scratch, false);
  }

  /**
   * Uses a VFIO pseudo-device the VMM created itself (KVM allows one per VM, so a VMM that has one cannot
   * let the library create another). `close()` deletes the files the library added and leaves the fd open.
   * @throws KvmError `BAD_ARGUMENT` for a non-fd, or the errno of mapping the scratch page.
   * @example
   * using kvmVfio = KvmVfioDevice.adopt(vmm.kvmVfioDeviceFd);
   */
  static adopt(deviceFd: number, options: { syscalls?: Syscalls } = {}): KvmVfioDevice {
    const fd = checkFd(deviceFd, 'deviceFd');
    const sys = options.syscalls ?? realSyscalls();
    return new KvmVfioDevice(fd, sys, mapScratchPage(sys), true);
  }

  /** The files added right now (group fds or device fds). */
  get files(): readonly number[] {
    return [...this.#files.keys()];
  }

  /** True once `close()` ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Adds a VFIO group fd (container path) or device fd (cdev path; before `VFIO_DEVICE_BIND_IOMMUFD`).
   * Adding a file that is already added only counts it again.
   * @throws KvmError `CLOSED`, `BAD_ARGUMENT`, or the errno KVM answered (EBADF, EEXIST...).
   */
  addFile(fd: number): void {
    if (this.#closed) throw new KvmError('KVM VFIO pseudo-device is closed', { code: 'CLOSED' });
    checkFd(fd, 'fd');
    const count = this.#files.get(fd);
    if (count !== undefined) {
      this.#files.set(fd, count + 1);
      return;
    }
    this.#setFileAttr(KVM_DEV_VFIO.FILE_ADD, fd);
    this.#files.set(fd, 1);
  }

  /**
   * Drops one count of `fd`; the last one deletes it from KVM (`KVM_DEV_VFIO_FILE_DEL`). A file that is not
   * added (or a closed pseudo-device, which deleted everything) is a no-op, so cleanup paths can always call it.
   * @throws KvmError with the errno KVM answered; the file is then forgotten anyway (it cannot be retried usefully).
   */
  removeFile(fd: number): void {
    const count = this.#files.get(fd);
    if (count === undefined) return;
    if (count > 1) {
      this.#files.set(fd, count - 1);
      return;
    }
    this.#files.delete(fd);
    this.#setFileAttr(KVM_DEV_VFIO.FILE_DEL, fd);
  }

  /**
   * Deletes every file still added, unmaps the scratch page and closes the fd (an adopted fd stays open: the
   * VMM owns it). Idempotent; never throws.
   */
  close(): void {
    if (this.#closed) return;
    for (const fd of [...this.#files.keys()]) {
      this.#files.delete(fd);
      try {
        this.#setFileAttr(KVM_DEV_VFIO.FILE_DEL, fd);
      } catch {
        // The file may already be gone (its fd closed first): nothing is left to release then.
      }
    }
    this.#closed = true;
    quietly(() => this.syscalls.munmap(this.#scratch));
    if (!this.#adopted) quietly(() => this.syscalls.close(this.fd));
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #setFileAttr(attr: number, fd: number): void {
    this.#slot.setInt32(0, fd, true);
    const request = encodeDeviceAttr({ flags: 0, group: KVM_DEV_VFIO.FILE, attr: BigInt(attr), addr: this.#scratch.address });
    const name = attr === KVM_DEV_VFIO.FILE_ADD ? 'KVM_DEV_VFIO_FILE_ADD' : 'KVM_DEV_VFIO_FILE_DEL';
    try {
      this.syscalls.ioctl(this.fd, 'KVM_SET_DEVICE_ATTR', request);
    } catch (error) {
      throw wrap(error, `KVM_SET_DEVICE_ATTR ${name} fd ${fd}`);
    }
  }
}

/** One shared page of memfd memory: the fd is closed at once, the mapping keeps the page alive. */
function mapScratchPage(sys: Syscalls): HostMapping {
  const page = BigInt(sys.pageSize());
  let memfd = -1;
  try {
    memfd = sys.memfdCreate('vfio-bars-kvm-vfio', 0);
    sys.ftruncate(memfd, page);
    const mapping = sys.mmap(memfd, 0n, page, PROT.READ | PROT.WRITE);
    if (!mapping.view) {
      quietly(() => sys.munmap(mapping));
      throw new KvmError('scratch page mapping has no view', { code: 'NO_VIEW' });
    }
    return mapping;
  } catch (error) {
    throw wrap(error, 'KVM VFIO scratch page');
  } finally {
    if (memfd >= 0) quietly(() => sys.close(memfd));
  }
}

function checkFd(fd: unknown, what: string): number {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0 || fd > 0x7fff_ffff) {
    throw new KvmError(`${what} must be a file descriptor (a non-negative 32-bit integer), got ${String(fd)}`, { code: 'BAD_ARGUMENT' });
  }
  return fd;
}

function wrap(error: unknown, what: string): unknown {
  if (!(error instanceof SystemError)) return error;
  return new KvmError(`${what}: ${error.message}`, { code: error.code, errno: error.errno, ioctl: error.ioctl ?? what }, { cause: error });
}

function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // Cleanup: the first error (if any) is the one the caller sees.
  }
}
