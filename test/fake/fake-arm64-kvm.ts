/**
 * An arm64 KVM in front of FakeKernel, for the VMM pieces of src/kvm (vCPU init and registers, vGICv3/ITS
 * devices, KVM_IRQ_LINE, KVM_RUN exits) on any machine. FakeKernel keeps doing files, memfds, mmaps and
 * slots (so its leak accounting covers everything); this layer adds what an arm64 host's KVM answers,
 * records what the library asked for, and injects faults into any call.
 */
import { constants } from 'node:os';
import { SystemError } from '../../src/sys/system-error.js';
import type { HostMapping, MmapOptions, Syscalls } from '../../src/sys/syscalls.js';
import { KVM_DEV_ARM_VGIC, KVM_DEV_TYPE_ARM, decodeDeviceAttr, type IoctlName, type KvmUserspaceMemoryRegion } from '../../src/uapi/index.js';
import { FakeKernel } from './fake-kernel.js';

const E = constants.errno;
/** KVM_ARM_TARGET_GENERIC_V8. */
export const FAKE_ARM64_TARGET = 5;

export interface FakeDevice {
  readonly type: number;
  readonly attrs: { group: number; attr: bigint; value: bigint | undefined }[];
}

export interface FakeVcpu {
  readonly id: number;
  init?: { target: number; features: number };
  readonly regs: Map<bigint, bigint>;
  /** The vCPU's kvm_run page, once the library mmapped it. */
  run?: DataView;
}

export class FakeArm64Kvm implements Syscalls {
  readonly inner: FakeKernel;
  readonly vcpus = new Map<number, FakeVcpu>();
  readonly devices = new Map<number, FakeDevice>();
  readonly irqLines: { irq: number; level: number }[] = [];
  /** Called on KVM_RUN: fills the run page as KVM would before returning to the VMM. */
  guest: (vcpu: FakeVcpu, run: DataView) => void = () => undefined;
  calls = 0;
  /** Name of every call, by index (`ioctl:KVM_RUN`, `mmap`...). */
  readonly names: string[] = [];
  readonly #vms = new Set<number>();
  readonly #views = new Map<bigint, DataView>();
  #failAt: { index: number; errno: number } | undefined;

  constructor(pageSize = 0x1_0000) {
    this.inner = new FakeKernel({ pageSize });
  }

  /** Make call number `index` (0-based, every Syscalls call but pageSize) fail with `errno`. */
  failAt(index: number, errno: number): void {
    this.#failAt = { index, errno };
  }

  pageSize(): number {
    return this.inner.pageSize();
  }

  open(path: string, flags: number): number {
    this.#enter('open');
    return this.inner.open(path, flags);
  }

  close(fd: number): void {
    try {
      this.#enter('close', fd);
    } catch (error) {
      this.inner.close(fd); // Linux releases the fd even when close reports an error
      throw error;
    }
    this.inner.close(fd);
    this.vcpus.delete(fd);
    this.devices.delete(fd);
    this.#vms.delete(fd);
  }

  ioctl(fd: number, request: IoctlName, arg: Buffer | number = 0): number {
    this.#enter('ioctl', fd, request);
    const buffer = typeof arg === 'number' ? Buffer.alloc(0) : arg;
    const fail = (errno: number): never => {
      throw new SystemError({ errno, syscall: 'ioctl', ioctl: request, fd });
    };
    if (request === 'KVM_CREATE_VM') {
      const vm = this.inner.ioctl(fd, request, arg);
      this.#vms.add(vm);
      return vm;
    }
    if (this.#vms.has(fd)) return this.#vmIoctl(fd, request, arg, buffer, fail);
    const vcpu = this.vcpus.get(fd);
    if (vcpu) return this.#vcpuIoctl(vcpu, request, buffer, fail);
    const device = this.devices.get(fd);
    if (device) return this.#deviceIoctl(device, request, buffer, fail);
    return this.inner.ioctl(fd, request, arg);
  }

  pread(fd: number, buffer: Buffer, offset: bigint): number {
    this.#enter('pread', fd);
    return this.inner.pread(fd, buffer, offset);
  }

  pwrite(fd: number, buffer: Buffer, offset: bigint): number {
    this.#enter('pwrite', fd);
    return this.inner.pwrite(fd, buffer, offset);
  }

  read(fd: number, buffer: Buffer): number {
    this.#enter('read', fd);
    return this.inner.read(fd, buffer);
  }

  write(fd: number, buffer: Buffer): number {
    this.#enter('write', fd);
    return this.inner.write(fd, buffer);
  }

  mmap(fd: number, offset: bigint, length: bigint, prot: number, options?: MmapOptions): HostMapping {
    this.#enter('mmap', fd);
    const mapping = this.inner.mmap(fd, offset, length, prot, options);
    if (mapping.view) {
      const view = new DataView(mapping.view);
      this.#views.set(mapping.address, view);
      const vcpu = this.vcpus.get(fd);
      if (vcpu) vcpu.run = view;
    }
    return mapping;
  }

  munmap(mapping: HostMapping): void {
    this.#enter('munmap');
    this.inner.munmap(mapping);
    this.#views.delete(mapping.address);
  }

  setUserMemoryRegion(vmFd: number, region: KvmUserspaceMemoryRegion): void {
    this.#enter('setUserMemoryRegion', vmFd);
    this.inner.setUserMemoryRegion(vmFd, region);
  }

  eventfd(initval: number, flags: number): number {
    this.#enter('eventfd');
    return this.inner.eventfd(initval, flags);
  }

  memfdCreate(name: string, flags: number): number {
    this.#enter('memfd_create');
    return this.inner.memfdCreate(name, flags);
  }

  ftruncate(fd: number, length: bigint): void {
    this.#enter('ftruncate', fd);
    this.inner.ftruncate(fd, length);
  }

  /** The u64 the library stored at host address `address` (inside one of its mappings). */
  readHost(address: bigint): bigint {
    for (const [base, view] of this.#views) {
      if (address >= base && address + 8n <= base + BigInt(view.byteLength)) return view.getBigUint64(Number(address - base), true);
    }
    throw new SystemError({ errno: E.EFAULT, syscall: 'ioctl' });
  }

  #writeHost(address: bigint, value: bigint): void {
    for (const [base, view] of this.#views) {
      if (address >= base && address + 8n <= base + BigInt(view.byteLength)) return view.setBigUint64(Number(address - base), value, true);
    }
    throw new SystemError({ errno: E.EFAULT, syscall: 'ioctl' });
  }

  /** A stand-in fd the inner kernel knows (a memfd), so close/mmap and leak accounting work on it. */
  #newFd(name: string): number {
    const fd = this.inner.memfdCreate(name, 0);
    this.inner.ftruncate(fd, 4n * BigInt(this.inner.pageSize())); // room for kvm_run
    return fd;
  }

  #vmIoctl(vmFd: number, request: IoctlName, arg: Buffer | number, buffer: Buffer, fail: (errno: number) => never): number {
    switch (request) {
      case 'KVM_CREATE_VCPU': {
        const id = typeof arg === 'number' ? arg : fail(E.EINVAL);
        if ([...this.vcpus.values()].some((v) => v.id === id)) return fail(E.EEXIST);
        const fd = this.#newFd('vcpu');
        this.vcpus.set(fd, { id, regs: new Map() });
        return fd;
      }
      case 'KVM_ARM_PREFERRED_TARGET':
        buffer.fill(0);
        buffer.writeUInt32LE(FAKE_ARM64_TARGET, 0);
        return 0;
      case 'KVM_CREATE_DEVICE': {
        const type = buffer.readUInt32LE(0);
        if (type !== KVM_DEV_TYPE_ARM.VGIC_V3 && type !== KVM_DEV_TYPE_ARM.VGIC_ITS) return fail(E.ENODEV);
        if ([...this.devices.values()].some((d) => d.type === type)) return fail(E.EEXIST);
        const fd = this.#newFd('device');
        this.devices.set(fd, { type, attrs: [] });
        buffer.writeUInt32LE(fd, 4);
        return 0;
      }
      case 'KVM_IRQ_LINE':
        this.irqLines.push({ irq: buffer.readUInt32LE(0), level: buffer.readUInt32LE(4) });
        return 0;
      default:
        return this.inner.ioctl(vmFd, request, arg);
    }
  }

  #vcpuIoctl(vcpu: FakeVcpu, request: IoctlName, buffer: Buffer, fail: (errno: number) => never): number {
    switch (request) {
      case 'KVM_ARM_VCPU_INIT': {
        const target = buffer.readUInt32LE(0);
        if (target !== FAKE_ARM64_TARGET) return fail(E.EINVAL);
        vcpu.init = { target, features: buffer.readUInt32LE(4) };
        return 0;
      }
      case 'KVM_SET_ONE_REG':
        if (!vcpu.init) return fail(E.ENOEXEC);
        vcpu.regs.set(buffer.readBigUInt64LE(0), this.readHost(buffer.readBigUInt64LE(8)));
        return 0;
      case 'KVM_GET_ONE_REG':
        if (!vcpu.init) return fail(E.ENOEXEC);
        this.#writeHost(buffer.readBigUInt64LE(8), vcpu.regs.get(buffer.readBigUInt64LE(0)) ?? 0n);
        return 0;
      case 'KVM_RUN':
        if (!vcpu.init) return fail(E.ENOEXEC);
        if (!vcpu.run) return fail(E.EFAULT);
        if (vcpu.run.getUint8(1) !== 0) return fail(E.EINTR); // immediate_exit
        this.guest(vcpu, vcpu.run);
        return 0;
      default:
        return fail(E.ENOTTY);
    }
  }

  #deviceIoctl(device: FakeDevice, request: IoctlName, buffer: Buffer, fail: (errno: number) => never): number {
    const attr = decodeDeviceAttr(buffer);
    const known = attr.group === KVM_DEV_ARM_VGIC.GRP_ADDR || attr.group === KVM_DEV_ARM_VGIC.GRP_CTRL;
    switch (request) {
      case 'KVM_HAS_DEVICE_ATTR':
        return known ? 0 : fail(E.ENXIO);
      case 'KVM_SET_DEVICE_ATTR': {
        if (!known) return fail(E.ENXIO);
        const initialised = device.attrs.some((a) => a.group === KVM_DEV_ARM_VGIC.GRP_CTRL);
        if (initialised && attr.group === KVM_DEV_ARM_VGIC.GRP_ADDR) return fail(E.EBUSY);
        device.attrs.push({ group: attr.group, attr: attr.attr, value: attr.addr === 0n ? undefined : this.readHost(attr.addr) });
        return 0;
      }
      case 'KVM_GET_DEVICE_ATTR': {
        const set = device.attrs.findLast((a) => a.group === attr.group && a.attr === attr.attr);
        if (!set) return fail(E.ENXIO);
        this.#writeHost(attr.addr, set.value ?? 0n);
        return 0;
      }
      default:
        return fail(E.ENOTTY);
    }
  }

  #enter(name: string, fd?: number, request?: IoctlName): void {
    const index = this.calls++;
    this.names.push(request ? `${name}:${request}` : name);
    if (this.#failAt?.index !== index) return;
    const errno = this.#failAt.errno;
    this.#failAt = undefined;
    throw new SystemError({ errno, syscall: name, ...(request ? { ioctl: request } : {}), ...(fd !== undefined ? { fd } : {}) });
  }
}
