/**
 * The fake kernel's KVM VFIO pseudo-device (virt/kvm/vfio.c): KVM_CREATE_DEVICE of KVM_DEV_TYPE_VFIO (one
 * per VM, EBUSY for a second; the TEST flag creates nothing), and KVM_SET_DEVICE_ATTR group KVM_DEV_VFIO_FILE
 * with ADD (EEXIST if already added, EBADF for an fd that is not open, EINVAL for a file that is not a VFIO
 * group or device) and DEL (EBADF for an fd not open, ENOENT for a file not added). The attribute's `addr`
 * is read as an `__s32` fd from the caller's memory.
 */
import { constants } from 'node:os';
import { KVM_CREATE_DEVICE_TEST, KVM_DEV_TYPE, KVM_DEV_VFIO, decodeCreateDevice, decodeDeviceAttr } from '../../src/uapi/index.js';

const E = constants.errno;

/** The pseudo-device's state, shared by the VM and the device fd: the files it holds (by identity). */
export interface KvmVfioState {
  readonly files: Map<object, number>;
}

export interface KvmDeviceFile { kind: 'kvm-device'; state: KvmVfioState }

export interface FakeKvmVfioHost {
  /** False: the kvm module was built without CONFIG_KVM_VFIO (KVM_CREATE_DEVICE answers ENODEV). */
  readonly enabled: boolean;
  newFd(file: KvmDeviceFile): number;
  /** Reads `length` bytes of the caller's memory at `address` (EFAULT when unmapped). */
  peek(address: bigint, length: number): Buffer | undefined;
  /** The open file behind `fd` if it is a VFIO group or device, `'other'` for any other open fd, undefined if not open. */
  vfioFile(fd: number): object | 'other' | undefined;
  /** KVM now holds (or no longer holds) a reference to `file`. */
  hold(file: object, held: boolean): void;
}

type Fail = (errno: number) => never;

export function createKvmDevice(vm: { vfio?: KvmVfioState }, buffer: Buffer, host: FakeKvmVfioHost, fail: Fail): number {
  const request = decodeCreateDevice(buffer);
  if (request.type !== KVM_DEV_TYPE.VFIO || !host.enabled) return fail(E.ENODEV);
  if ((request.flags & ~KVM_CREATE_DEVICE_TEST) !== 0) return fail(E.EINVAL);
  if (request.flags === KVM_CREATE_DEVICE_TEST) return 0;
  if (vm.vfio) return fail(E.EBUSY); // "Only one VFIO device per VM"
  vm.vfio = { files: new Map() };
  buffer.writeUInt32LE(host.newFd({ kind: 'kvm-device', state: vm.vfio }), 4);
  return 0;
}

export function setKvmVfioAttr(device: KvmDeviceFile, buffer: Buffer, host: FakeKvmVfioHost, fail: Fail): number {
  const attr = decodeDeviceAttr(buffer);
  if (attr.group !== KVM_DEV_VFIO.FILE) return fail(E.ENXIO);
  const bytes = host.peek(attr.addr, 4);
  if (!bytes) return fail(E.EFAULT);
  const fd = bytes.readInt32LE(0);
  const file = host.vfioFile(fd);
  if (!file) return fail(E.EBADF);
  if (attr.attr === BigInt(KVM_DEV_VFIO.FILE_ADD)) {
    if (file === 'other') return fail(E.EINVAL);
    if (device.state.files.has(file)) return fail(E.EEXIST);
    device.state.files.set(file, fd);
    host.hold(file, true);
    return 0;
  }
  if (attr.attr === BigInt(KVM_DEV_VFIO.FILE_DEL)) {
    if (file === 'other' || !device.state.files.delete(file)) return fail(E.ENOENT);
    host.hold(file, false);
    return 0;
  }
  return fail(E.ENXIO);
}
