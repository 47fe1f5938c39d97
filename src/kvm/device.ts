/* KvmDevice: an in-kernel KVM device (documented on the class). */
import { decodeCreateDevice, encodeCreateDevice, encodeDeviceAttr, type IoctlName } from '../uapi/index.js';
import { SystemError } from '../sys/system-error.js';
import { UndoStack } from '../vfio/cleanup.js';
import { KvmError } from './errors.js';
import { HostScratch } from './scratch.js';
import type { KvmVm } from './vm.js';

/**
 * `KvmDevice`: an in-kernel device made with KVM_CREATE_DEVICE (on arm64 the vGICv3 and its ITS) and
 * configured through its attributes. Attribute values travel by host address, so they go through a
 * scratch page the device owns (see scratch.ts).
 *
 * @example
 * using its = KvmDevice.create(vm, KVM_DEV_TYPE_ARM.VGIC_ITS, 'ITS');
 */
export class KvmDevice implements Disposable {
  /** The device fd KVM returned. */
  readonly fd: number;
  /** `enum kvm_device_type` value (e.g. `KVM_DEV_TYPE_ARM.VGIC_V3`). */
  readonly type: number;
  /** A name for messages (`'vgic-v3'`, `'vgic-its'`). */
  readonly name: string;
  readonly #vm: KvmVm;
  readonly #scratch: HostScratch;
  #closed = false;

  private constructor(vm: KvmVm, fd: number, type: number, name: string, scratch: HostScratch) {
    this.#vm = vm;
    this.fd = fd;
    this.type = type;
    this.name = name;
    this.#scratch = scratch;
  }

  /**
   * KVM_CREATE_DEVICE of `type` in `vm`.
   * @throws KvmError with the errno name as code (ENODEV: this host's KVM has no such device; EEXIST: a
   *   second vGIC) and `ioctl: 'KVM_CREATE_DEVICE'`. Nothing is left behind on failure.
   * @example
   * using gic = KvmDevice.create(vm, KVM_DEV_TYPE_ARM.VGIC_V3, 'vgic-v3');
   */
  static create(vm: KvmVm, type: number, name = `device type ${type}`): KvmDevice {
    const undo = new UndoStack();
    try {
      const scratch = HostScratch.create(vm.syscalls, `vfio-bars-${name}`);
      undo.push(() => scratch.close());
      const request = encodeCreateDevice(type);
      wrap(name, 'KVM_CREATE_DEVICE', () => vm.syscalls.ioctl(vm.fd, 'KVM_CREATE_DEVICE', request));
      const fd = decodeCreateDevice(request).fd;
      undo.release();
      return new KvmDevice(vm, fd, type, name, scratch);
    } catch (error) {
      undo.unwind();
      throw error;
    }
  }

  /**
   * KVM_SET_DEVICE_ATTR. `value` (a u64, e.g. a guest physical address) is passed by host address;
   * without it `addr` is 0 (control attributes such as CTRL_INIT take no value).
   * @throws KvmError (errno name as code; EBUSY after the device was initialised, EINVAL/E2BIG/ENXIO on a bad value or attribute).
   */
  setAttr(group: number, attr: bigint, value?: bigint): void {
    this.#assertOpen();
    const addr = value === undefined ? 0n : this.#scratch.put(0, value);
    this.#attrIoctl('KVM_SET_DEVICE_ATTR', group, attr, addr);
  }

  /** KVM_GET_DEVICE_ATTR of a u64 attribute. @throws KvmError as {@link setAttr}. */
  getAttr(group: number, attr: bigint): bigint {
    this.#assertOpen();
    const addr = this.#scratch.put(0, 0n);
    this.#attrIoctl('KVM_GET_DEVICE_ATTR', group, attr, addr);
    return this.#scratch.get(0);
  }

  /** KVM_HAS_DEVICE_ATTR: whether this kernel knows the attribute (ENXIO means no). */
  hasAttr(group: number, attr: bigint): boolean {
    this.#assertOpen();
    try {
      this.#attrIoctl('KVM_HAS_DEVICE_ATTR', group, attr, 0n);
      return true;
    } catch (error) {
      if (error instanceof KvmError && error.code === 'ENXIO') return false;
      throw error;
    }
  }

  /**
   * Closes the device fd (KVM keeps the device itself until the VM goes) and the scratch page, both even
   * when one fails (the first error is rethrown). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const undo = new UndoStack();
    undo.push(() => this.#vm.syscalls.close(this.fd));
    undo.push(() => this.#scratch.close());
    const errors = undo.unwind();
    if (errors.length > 0) throw errors[0];
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #attrIoctl(request: IoctlName, group: number, attr: bigint, addr: bigint): void {
    const arg = encodeDeviceAttr({ flags: 0, group, attr, addr });
    wrap(`${this.name} group ${group} attr ${attr}`, request, () => this.#vm.syscalls.ioctl(this.fd, request, arg));
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvmError(`KVM device ${this.name} is closed`, { code: 'CLOSED' });
  }
}

/** Runs a device ioctl; a kernel refusal becomes a KvmError naming the device, the ioctl and the errno. */
function wrap(what: string, ioctl: IoctlName, call: () => number): number {
  try {
    return call();
  } catch (error) {
    if (!(error instanceof SystemError)) throw error;
    throw new KvmError(`${ioctl} (${what}): ${error.code}`, { code: error.code, errno: error.errno, ioctl }, { cause: error });
  }
}
