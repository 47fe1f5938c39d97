/**
 * A fake kernel behind the `Syscalls` interface, answering as Linux does for every call the library
 * makes (VFIO container/group/device, iommufd, KVM VM and slots, mmap, DMA maps), with fault injection
 * and leak accounting. The KVM answers are cross-checked against the real /dev/kvm in
 * test/map/fake-vs-real.test.ts.
 */
import { constants } from 'node:os';
import { SystemError } from '../../src/sys/system-error.js';
import type { HostMapping, MmapOptions, Syscalls } from '../../src/sys/syscalls.js';
import {
  KVM_API_VERSION, KVM_CAP, VFIO_EXTENSION, VFIO_GROUP_FLAGS, VFIO_REGION_FLAGS, decodeDmaMap, decodeDmaUnmap, decodeIoasMap,
  decodeIoasUnmap, decodeRegionInfo,
  writeRegionInfo, type IoctlName, type KvmUserspaceMemoryRegion,
} from '../../src/uapi/index.js';
import type { DeviceDescription, RegionCapability, RegionDescription } from '../../src/vfio/description.js';
import { EBADFD, bindArgumentsInvalid, cdevNotBound, deviceFeature, touchesPfnmap } from './iommufd-rules.js';
import {
  GroupOpens, deviceOfGroup, detachGroup, setContainer, setIommu, topologyNodes, type ContainerFile, type FakeGroup, type GroupFile,
} from './fake-vfio-groups.js';
import { createKvmDevice, setKvmVfioAttr, type FakeKvmVfioHost, type KvmDeviceFile, type KvmVfioState } from './fake-kvm-vfio.js';
import { hostileDeviceInfo, hostileIrqInfo, hostileRegionInfo, type HostileReplies } from './fake-hostile.js';
import { FakeIrq } from './fake-irq.js';
import { FakeRegions } from './fake-regions.js';
import { FakePagemap, PAGEMAP_PATH } from './fake-pagemap.js';

const E = constants.errno;

type FdKind =
  | { kind: 'kvm' }
  | { kind: 'vm'; slots: Map<number, KvmUserspaceMemoryRegion>; vfio?: KvmVfioState }
  | { kind: 'vcpu' }
  | ContainerFile
  | GroupFile
  | { kind: 'device'; bound?: boolean; bdf?: string; kvmAtBind?: boolean; cdev?: boolean }
  | KvmDeviceFile
  | { kind: 'iommufd'; ioas: Map<number, Map<bigint, bigint>> }
  | { kind: 'memfd'; size: bigint }
  | { kind: 'pagemap' }
  | { kind: 'other'; path: string };

export interface FakeKernelOptions {
  pageSize?: number;
  /** Device served at /dev/vfio/<group>; its regions answer GET_REGION_INFO like vfio-pci. */
  device?: DeviceDescription;
  /** Raw config space served through region 7 (defaults to zeros). */
  config?: Buffer;
  group?: string;
  noiommu?: boolean;
  nrMemslots?: number;
  /** Prefix of the device nodes (matches VfioOpenOptions.devRoot). Default `/dev`. */
  devRoot?: string;
  /** The kernel can export BARs as dma-buf (VFIO_DEVICE_FEATURE_DMA_BUF, Linux 6.19+). Default false (6.12). */
  dmaBufExport?: boolean;
  /** IOMMU groups and their devices (fake-vfio-groups.ts); default: `group` holding `device` (cdev vfio0). */
  groups?: readonly FakeGroup[];
  /** KVM built with its VFIO pseudo-device (default true). */
  kvmVfio?: boolean;
  /** Absurd counts and sizes in device replies (fake-hostile.ts). */
  hostile?: HostileReplies;
}

export interface CallRecord {
  readonly index: number;
  readonly name: string;
  readonly detail: string;
}

export class FakeKernel implements Syscalls {
  readonly calls: CallRecord[] = [];
  /** Eventfds, KVM irqchip/routing/irqfd and vfio-pci MSI-X triggers (test/fake/fake-irq.ts). */
  readonly irq: FakeIrq;
  /** Bytes behind each device region for pread/pwrite (test/fake/fake-regions.ts). */
  readonly regions: FakeRegions;
  /** /proc/self/pagemap: where host pages sit physically (noiommu DMA checks). */
  readonly pagemap: FakePagemap;
  readonly #pageSize: bigint;
  readonly #device: DeviceDescription | undefined;
  readonly #config: Buffer;
  readonly #files: Map<string, () => FdKind>;
  readonly #fds = new Map<number, FdKind>();
  readonly #mappings = new Map<bigint, { length: bigint; view: ArrayBuffer; pfnmap: boolean }>();
  readonly #dmaBufExport: boolean;
  readonly #nrMemslots: number;
  readonly #groups: Map<string, FakeGroup>;
  readonly #groupOpens = new GroupOpens();
  readonly #kvmHeld = new Set<object>();
  readonly #kvmVfio: boolean;
  readonly #hostile: HostileReplies | undefined;
  #nextFd = 10;
  #nextAddress = 0x7f00_0000_0000n;
  #faults: { when: (call: CallRecord) => boolean; errno: number; once: boolean }[] = [];

  constructor(options: FakeKernelOptions = {}) {
    this.#pageSize = BigInt(options.pageSize ?? 4096);
    this.#device = options.device;
    this.#config = options.config ?? Buffer.alloc(4096);
    this.#nrMemslots = options.nrMemslots ?? 509;
    this.#dmaBufExport = options.dmaBufExport ?? false;
    this.irq = new FakeIrq(options.device?.irqs);
    this.regions = new FakeRegions(options.device, this.#config);
    this.pagemap = new FakePagemap(this.#pageSize);
    const group = options.group ?? '7';
    const dev = options.devRoot ?? '/dev';
    this.#kvmVfio = options.kvmVfio ?? true;
    this.#hostile = options.hostile;
    const single: FakeGroup = {
      id: group,
      noiommu: options.noiommu ?? false,
      devices: [{ bdf: options.device?.bdf ?? '', cdev: 'vfio0' }],
    };
    const topology = topologyNodes(options.groups ?? [single], dev);
    this.#groups = topology.groups;
    this.#files = new Map<string, () => FdKind>([
      [`${dev}/kvm`, () => ({ kind: 'kvm' })],
      [`${dev}/vfio/vfio`, () => ({ kind: 'container', dma: new Map() })],
      ...[...topology.groups.keys()].map((node): [string, () => FdKind] => [node, () => ({ kind: 'group', node })]),
      // The cdev path (Linux 6.6+): the device nodes themselves, and iommufd.
      ...[...topology.cdevs].map(([node, bdf]): [string, () => FdKind] => [node, () => ({ kind: 'device', bdf, cdev: true })]),
      [`${dev}/iommu`, () => ({ kind: 'iommufd', ioas: new Map() })],
      [PAGEMAP_PATH, () => ({ kind: 'pagemap' })],
    ]);
  }

  // ---- fault injection and accounting --------------------------------------------------------

  /** Make call number `index` (0-based, counting every call but pageSize) fail with `errno`. */
  failAt(index: number, errno: number): void {
    this.#faults.push({ when: (c) => c.index === index, errno, once: true });
  }

  /** Make every call matching `predicate` fail with `errno` (until `clearFaults`). */
  failWhen(predicate: (call: CallRecord) => boolean, errno: number, once = false): void {
    this.#faults.push({ when: predicate, errno, once });
  }

  clearFaults(): void {
    this.#faults = [];
  }

  /** Resources alive right now. */
  live(): { fds: number; mmaps: number; slots: number; dmaMaps: number; kvmFiles: number } {
    let slots = 0;
    let dmaMaps = 0;
    for (const fd of this.#fds.values()) {
      if (fd.kind === 'vm') slots += fd.slots.size;
      if (fd.kind === 'container') dmaMaps += fd.dma.size;
      if (fd.kind === 'iommufd') for (const maps of fd.ioas.values()) dmaMaps += maps.size;
    }
    return { fds: this.#fds.size, mmaps: this.#mappings.size, slots, dmaMaps, kvmFiles: this.#kvmHeld.size };
  }

  /** The bytes at a host address inside a live mapping (what the kernel would copy_from_user), or undefined. */
  peek(address: bigint, length: number): Buffer | undefined {
    for (const [start, mapping] of this.#mappings) {
      if (address >= start && address + BigInt(length) <= start + BigInt(mapping.view.byteLength)) {
        return Buffer.from(mapping.view, Number(address - start), length);
      }
    }
    return undefined;
  }

  /** Whether the device file behind `fd` was added to KVM's VFIO pseudo-device when it was bound to iommufd. */
  sawKvmAtBind(fd: number): boolean | undefined {
    const file = this.#fds.get(fd);
    return file?.kind === 'device' ? file.kvmAtBind : undefined;
  }

  /** Snapshot of a VM's slots, for assertions. */
  slotsOf(vmFd: number): KvmUserspaceMemoryRegion[] {
    const vm = this.#fds.get(vmFd);
    return vm?.kind === 'vm' ? [...vm.slots.values()] : [];
  }

  // ---- Syscalls ------------------------------------------------------------------------------

  pageSize(): number {
    return Number(this.#pageSize);
  }

  open(path: string, _flags: number): number {
    this.#enter('open', path, { syscall: 'open', path });
    const make = this.#files.get(path);
    if (!make) this.#fail(E.ENOENT, { syscall: 'open', path });
    if (this.#groups.has(path)) this.#groupOpens.open(path, (errno) => this.#fail(errno, { syscall: 'open', path })); // one open per group
    return this.#newFd(make());
  }

  close(fd: number): void {
    // Linux releases the descriptor even when close(2) reports an error, so an injected fault does too.
    let injected: Error | undefined;
    try {
      this.#enter('close', String(fd), { syscall: 'close', fd });
    } catch (error) {
      injected = error as Error;
    }
    this.#release(fd);
    if (injected !== undefined) throw injected;
  }

  #release(fd: number): void {
    const file = this.#fds.get(fd);
    if (!this.#fds.delete(fd)) this.#fail(E.EBADF, { syscall: 'close', fd });
    if (file?.kind === 'group') this.#releaseGroupFile(file);
    if (file?.kind === 'vm' || file?.kind === 'kvm-device') this.#releaseKvmVfio(file.kind === 'vm' ? file.vfio : file.state);
    this.irq.onClose(fd);
  }

  ioctl(fd: number, request: IoctlName, arg: Buffer | number = 0): number {
    this.#enter(request, String(fd), { syscall: 'ioctl', ioctl: request, fd });
    const file = this.#fds.get(fd);
    if (!file) return this.#fail(E.EBADF, { syscall: 'ioctl', ioctl: request, fd });
    const fail = (errno: number): never => this.#fail(errno, { syscall: 'ioctl', ioctl: request, fd });
    const buffer = typeof arg === 'number' ? Buffer.alloc(0) : arg;
    const value = typeof arg === 'number' ? arg : 0;
    if (file.kind === 'device' && cdevNotBound(file, request)) return fail(E.EINVAL);
    switch (`${file.kind}:${request}`) {
      case 'kvm:KVM_GET_API_VERSION': return KVM_API_VERSION;
      case 'kvm:KVM_CREATE_VM': return this.#newFd({ kind: 'vm', slots: new Map() });
      case 'kvm:KVM_GET_VCPU_MMAP_SIZE': return 3 * 4096;
      case 'vm:KVM_CHECK_EXTENSION':
      case 'kvm:KVM_CHECK_EXTENSION':
        return value === KVM_CAP.NR_MEMSLOTS ? this.#nrMemslots : value === KVM_CAP.READONLY_MEM ? 1 : (this.irq.capability(value) ?? 0);
      case 'container:VFIO_GET_API_VERSION': return 0;
      case 'container:VFIO_CHECK_EXTENSION':
        return [VFIO_EXTENSION.TYPE1_IOMMU, VFIO_EXTENSION.TYPE1v2_IOMMU, VFIO_EXTENSION.NOIOMMU_IOMMU].includes(value as 1) ? 1 : 0;
      case 'container:VFIO_SET_IOMMU':
        return file.kind === 'container' ? setIommu(file, value, fail) : fail(E.EINVAL);
      case 'container:VFIO_IOMMU_MAP_DMA': return this.#mapDma(file, buffer, fail);
      case 'container:VFIO_IOMMU_UNMAP_DMA': return this.#unmapDma(file, buffer, fail);
      case 'group:VFIO_GROUP_GET_STATUS':
        buffer.writeUInt32LE(
          VFIO_GROUP_FLAGS.VIABLE | (file.kind === 'group' && file.container !== undefined ? VFIO_GROUP_FLAGS.CONTAINER_SET : 0),
          4,
        );
        return 0;
      case 'group:VFIO_GROUP_SET_CONTAINER': {
        const containerFd = buffer.readInt32LE(0);
        if (file.kind !== 'group') return fail(E.EINVAL);
        return setContainer(file, this.#container(containerFd), containerFd, fail);
      }
      case 'group:VFIO_GROUP_GET_DEVICE_FD': {
        if (file.kind !== 'group' || !this.#device) return fail(E.ENODEV);
        const name = buffer.toString('utf8').replace(/\0.*$/s, '');
        const bdf = deviceOfGroup(this.#groups.get(file.node ?? ''), name, this.#container(file.container), fail);
        return this.#newFd({ kind: 'device', bdf });
      }
      case 'vm:KVM_CREATE_DEVICE':
        return file.kind === 'vm' ? createKvmDevice(file, buffer, this.#kvmVfioHost(), fail) : fail(E.EINVAL);
      case 'kvm-device:KVM_SET_DEVICE_ATTR':
        return file.kind === 'kvm-device' ? setKvmVfioAttr(file, buffer, this.#kvmVfioHost(), fail) : fail(E.EINVAL);
      case 'device:VFIO_DEVICE_BIND_IOMMUFD': {
        const target = this.#fds.get(buffer.readInt32LE(8));
        if (bindArgumentsInvalid(buffer)) return fail(E.EINVAL);
        if (file.kind !== 'device' || !file.cdev || file.bound) return fail(E.EINVAL); // group fds and a second bind: EINVAL
        if (target === undefined) return fail(E.EBADF);
        if (target.kind !== 'iommufd') return fail(EBADFD); // iommufd_ctx_from_fd: an fd, but not an iommufd
        file.bound = true;
        file.kvmAtBind = this.#kvmHeld.has(file); // KVM must know the device before the bind (drivers read kvm at open)
        buffer.writeUInt32LE(1, 12); // out_devid
        return 0;
      }
      case 'device:VFIO_DEVICE_ATTACH_IOMMUFD_PT':
        if (file.kind !== 'device' || !file.bound) return fail(E.EINVAL);
        if (![...this.#fds.values()].some((f) => f.kind === 'iommufd' && f.ioas.has(buffer.readUInt32LE(8)))) return fail(E.ENOENT);
        return 0;
      case 'iommufd:IOMMU_IOAS_ALLOC': {
        if (file.kind !== 'iommufd') return fail(E.EINVAL);
        const id = file.ioas.size + 1;
        file.ioas.set(id, new Map());
        buffer.writeUInt32LE(id, 8);
        return 0;
      }
      case 'iommufd:IOMMU_IOAS_MAP':
      case 'iommufd:IOMMU_IOAS_UNMAP':
        return this.#ioas(file, request, buffer, fail);
      case 'device:VFIO_DEVICE_FEATURE': {
        const errno = deviceFeature(buffer, this.#dmaBufExport);
        return errno === 0 ? 0 : fail(errno);
      }
      case 'device:VFIO_DEVICE_GET_INFO':
        this.#deviceInfo(buffer, fail);
        hostileDeviceInfo(buffer, this.#hostile);
        return 0;
      case 'device:VFIO_DEVICE_GET_REGION_INFO':
        this.#regionInfo(buffer, fail);
        hostileRegionInfo(buffer, this.#hostile);
        return 0;
      case 'device:VFIO_DEVICE_GET_IRQ_INFO': {
        const irq = this.#device?.irqs.find((i) => i.index === buffer.readUInt32LE(8));
        if (!irq) return fail(E.EINVAL);
        buffer.writeUInt32LE(irq.flags, 4);
        buffer.writeUInt32LE(irq.count, 12);
        hostileIrqInfo(buffer, this.#hostile);
        return 0;
      }
      default:
        return this.irq.ioctl(file.kind, fd, request, buffer, fail, (other) => this.#fds.has(other)) ?? fail(E.ENOTTY);
    }
  }

  pread(fd: number, buffer: Buffer, offset: bigint): number {
    this.#enter('pread', `${fd}@${offset.toString(16)}`, { syscall: 'pread', fd });
    const file = this.#fds.get(fd);
    const fail = (errno: number): never => this.#fail(errno, { syscall: 'pread', fd });
    if (file?.kind === 'pagemap') return this.pagemap.read(buffer, offset, fail, E.EINVAL);
    if (file?.kind !== 'device') return this.#fail(E.EBADF, { syscall: 'pread', fd });
    if (cdevNotBound(file, 'pread')) return this.#fail(E.EINVAL, { syscall: 'pread', fd });
    return this.regions.read(buffer, offset, (errno) => this.#fail(errno, { syscall: 'pread', fd }));
  }

  pwrite(fd: number, buffer: Buffer, offset: bigint): number {
    this.#enter('pwrite', `${fd}@${offset.toString(16)}`, { syscall: 'pwrite', fd });
    const file = this.#fds.get(fd);
    if (!file) return this.#fail(E.EBADF, { syscall: 'pwrite', fd });
    if (file.kind !== 'device') return buffer.length;
    return this.regions.write(buffer, offset, (errno) => this.#fail(errno, { syscall: 'pwrite', fd }));
  }

  mmap(fd: number, offset: bigint, length: bigint, prot: number, options: MmapOptions = {}): HostMapping {
    this.#enter('mmap', `${fd}@${offset.toString(16)}+${length.toString(16)}`, { syscall: 'mmap', fd });
    const fail = (errno: number): never => this.#fail(errno, { syscall: 'mmap', fd });
    const file = this.#fds.get(fd);
    if (!file) return fail(E.EBADF);
    if (length === 0n || offset % this.#pageSize !== 0n) return fail(E.EINVAL);
    if (file.kind === 'device' && cdevNotBound(file, 'mmap')) return fail(E.EINVAL);
    if (file.kind === 'device') this.#checkDeviceMmap(offset, length, prot, options, fail);
    else if (file.kind === 'memfd' && offset + length > file.size) return fail(E.EINVAL);
    else if (file.kind !== 'memfd' && file.kind !== 'vcpu') return fail(E.ENODEV);
    const align = options.align && options.align > this.#pageSize ? options.align : this.#pageSize;
    const alignOffset = align > this.#pageSize ? (options.alignOffset ?? 0n) : 0n; // address ≡ alignOffset (mod align)
    const address = roundUp(this.#nextAddress - alignOffset, align) + alignOffset;
    this.#nextAddress = address + roundUp(length, this.#pageSize) + this.#pageSize; // guard page between mappings
    const view = new ArrayBuffer(Number(length < 1n << 24n ? length : 0n));
    this.#mappings.set(address, { length, view, pfnmap: file.kind === 'device' });
    return { address, length, view };
  }

  munmap(mapping: HostMapping): void {
    this.#enter('munmap', mapping.address.toString(16), { syscall: 'munmap' });
    const live = this.#mappings.get(mapping.address);
    if (!live || live.length !== mapping.length) return this.#fail(E.EINVAL, { syscall: 'munmap' });
    this.#mappings.delete(mapping.address);
    // Detach like the shim does, so a use after unmap throws.
    structuredClone(live.view, { transfer: [live.view] });
  }

  setUserMemoryRegion(vmFd: number, region: KvmUserspaceMemoryRegion): void {
    this.#enter(
      'KVM_SET_USER_MEMORY_REGION',
      `slot ${region.slot} gpa ${region.guestPhysAddr.toString(16)} size ${region.memorySize.toString(16)}`,
      { syscall: 'ioctl', ioctl: 'KVM_SET_USER_MEMORY_REGION', fd: vmFd },
    );
    const fail = (errno: number): never => this.#fail(errno, { syscall: 'ioctl', ioctl: 'KVM_SET_USER_MEMORY_REGION', fd: vmFd });
    const vm = this.#fds.get(vmFd);
    if (vm?.kind !== 'vm') return fail(E.ENOTTY);
    kvmSetRegion(vm.slots, region, this.#pageSize, this.#nrMemslots, fail);
  }

  eventfd(initval: number, flags: number): number {
    this.#enter('eventfd', '', { syscall: 'eventfd' });
    const fd = this.#newFd({ kind: 'other', path: 'eventfd' });
    this.irq.addEventfd(fd, initval, flags);
    return fd;
  }

  read(fd: number, buffer: Buffer): number {
    this.#enter('read', String(fd), { syscall: 'read', fd });
    if (!this.#fds.has(fd)) return this.#fail(E.EBADF, { syscall: 'read', fd });
    if (!this.irq.isEventfd(fd)) return this.#fail(E.EINVAL, { syscall: 'read', fd });
    return this.irq.read(fd, buffer, (errno) => this.#fail(errno, { syscall: 'read', fd }));
  }

  write(fd: number, buffer: Buffer): number {
    this.#enter('write', String(fd), { syscall: 'write', fd });
    if (!this.#fds.has(fd)) return this.#fail(E.EBADF, { syscall: 'write', fd });
    if (!this.irq.isEventfd(fd)) return this.#fail(E.EINVAL, { syscall: 'write', fd });
    return this.irq.write(fd, buffer, (errno) => this.#fail(errno, { syscall: 'write', fd }));
  }

  memfdCreate(name: string, _flags: number): number {
    this.#enter('memfd_create', name, { syscall: 'memfd_create' });
    return this.#newFd({ kind: 'memfd', size: 0n });
  }

  ftruncate(fd: number, length: bigint): void {
    this.#enter('ftruncate', String(fd), { syscall: 'ftruncate', fd });
    const file = this.#fds.get(fd);
    if (file?.kind !== 'memfd') return this.#fail(E.EINVAL, { syscall: 'ftruncate', fd });
    file.size = length;
  }

  // ---- internals -----------------------------------------------------------------------------

  #enter(name: string, detail: string, context: { syscall: string; ioctl?: string; path?: string; fd?: number }): void {
    const call = { index: this.calls.length, name, detail };
    this.calls.push(call);
    const fault = this.#faults.find((f) => f.when(call));
    if (!fault) return;
    if (fault.once) this.#faults.splice(this.#faults.indexOf(fault), 1);
    this.#fail(fault.errno, context);
  }

  #fail(errno: number, context: { syscall: string; ioctl?: string; path?: string; fd?: number }): never {
    throw new SystemError({ errno, ...context });
  }

  #newFd(kind: FdKind): number {
    const fd = this.#nextFd++;
    this.#fds.set(fd, kind);
    return fd;
  }

  #kvmVfioHost(): FakeKvmVfioHost {
    return {
      enabled: this.#kvmVfio,
      newFd: (file) => this.#newFd(file),
      peek: (address, length) => this.peek(address, length),
      vfioFile: (fd) => {
        const file = this.#fds.get(fd);
        if (!file) return undefined;
        return file.kind === 'group' || file.kind === 'device' ? file : 'other';
      },
      hold: (file, held) => {
        if (held) this.#kvmHeld.add(file);
        else this.#kvmHeld.delete(file);
        const group = file as FdKind;
        if (group.kind !== 'group' || group.node === undefined) return;
        if (held) this.#groupOpens.hold(group.node);
        else this.#releaseGroupFile(group);
      },
    };
  }

  /** One reference to a group file gone (its fd closed, or KVM let go); the last one detaches it. */
  #releaseGroupFile(file: GroupFile): void {
    if (file.node === undefined || !this.#groupOpens.release(file.node)) return;
    detachGroup(file, this.#container(file.container));
  }

  #container(fd: number | undefined): ContainerFile | undefined {
    const file = fd === undefined ? undefined : this.#fds.get(fd);
    return file?.kind === 'container' ? file : undefined;
  }

  /** The VM and its pseudo-device are gone once neither fd is open: KVM drops the files it held. */
  #releaseKvmVfio(state: KvmVfioState | undefined): void {
    if (!state) return;
    for (const other of this.#fds.values()) {
      if ((other.kind === 'vm' && other.vfio === state) || (other.kind === 'kvm-device' && other.state === state)) return;
    }
    const host = this.#kvmVfioHost();
    for (const file of [...state.files.keys()]) host.hold(file, false);
    state.files.clear();
  }

  #region(index: number): RegionDescription | undefined {
    return this.#device?.regions.find((r) => r.index === index);
  }

  #checkDeviceMmap(offset: bigint, length: bigint, prot: number, options: MmapOptions, fail: (errno: number) => never): void {
    const region = this.#region(Number(offset >> 40n));
    const within = offset & ((1n << 40n) - 1n);
    // vfio-pci: MAP_SHARED only, MMAP flag required, at most PAGE_ALIGN(region size) from the region start.
    if (!region || (region.flags & VFIO_REGION_FLAGS.MMAP) === 0 || options.shared === false) fail(E.EINVAL);
    if (within + length > roundUp(region.size, this.#pageSize)) fail(E.EINVAL);
    if ((prot & 2) !== 0 && (region.flags & VFIO_REGION_FLAGS.WRITE) === 0) fail(E.EINVAL);
  }

  #deviceInfo(buffer: Buffer, fail: (errno: number) => never): number {
    if (!this.#device || buffer.length < 16 || buffer.readUInt32LE(0) < 16) return fail(E.EINVAL);
    buffer.writeUInt32LE(this.#device.flags, 4);
    buffer.writeUInt32LE(this.#device.numRegions, 8);
    buffer.writeUInt32LE(this.#device.numIrqs, 12);
    return 0;
  }

  #regionInfo(buffer: Buffer, fail: (errno: number) => never): number {
    const request = decodeRegionInfo(buffer);
    if (request.argsz < 32) return fail(E.EINVAL);
    const region = this.#region(request.index);
    if (!region) return fail(E.EINVAL);
    const caps = encodeCapChain(region.capabilities, 32);
    const full = 32 + caps.length;
    const flags = region.flags | (caps.length > 0 ? VFIO_REGION_FLAGS.CAPS : 0);
    if (caps.length > 0 && request.argsz < full) {
      // Too small: Linux answers 0 with CAPS set, the size it needs, and cap_offset 0.
      writeRegionInfo(buffer, { argsz: full, flags, index: region.index, capOffset: 0, size: region.size, offset: region.offset });
      return 0;
    }
    writeRegionInfo(
      buffer,
      {
        argsz: caps.length > 0 ? full : request.argsz,
        flags,
        index: region.index,
        capOffset: caps.length > 0 ? 32 : 0,
        size: region.size,
        offset: region.offset,
      },
    );
    caps.copy(buffer, 32);
    return 0;
  }

  #mapDma(file: FdKind, buffer: Buffer, fail: (errno: number) => never): number {
    if (file.kind !== 'container' || file.iommuType === undefined || file.iommuType === VFIO_EXTENSION.NOIOMMU_IOMMU) return fail(E.EINVAL);
    const map = decodeDmaMap(buffer);
    const unaligned = map.iova % this.#pageSize !== 0n || map.size % this.#pageSize !== 0n || map.vaddr % this.#pageSize !== 0n;
    if (map.size === 0n || unaligned) return fail(E.EINVAL);
    for (const [iova, size] of file.dma) if (map.iova < iova + size && iova < map.iova + map.size) return fail(E.EEXIST);
    file.dma.set(map.iova, map.size);
    return 0;
  }

  #ioas(file: FdKind, request: IoctlName, buffer: Buffer, fail: (errno: number) => never): number {
    if (file.kind !== 'iommufd') return fail(E.EINVAL);
    if (request === 'IOMMU_IOAS_MAP') {
      const map = decodeIoasMap(buffer);
      const maps = file.ioas.get(map.ioasId);
      if (!maps) return fail(E.ENOENT);
      if (touchesPfnmap(this.#mappings, map.userVa, map.length)) return fail(E.EFAULT);
      for (const [iova, size] of maps) if (map.iova < iova + size && iova < map.iova + map.length) return fail(E.EEXIST);
      maps.set(map.iova, map.length);
      return 0;
    }
    const unmap = decodeIoasUnmap(buffer);
    const maps = file.ioas.get(unmap.ioasId);
    if (!maps?.delete(unmap.iova)) return fail(E.ENOENT);
    return 0;
  }

  #unmapDma(file: FdKind, buffer: Buffer, fail: (errno: number) => never): number {
    if (file.kind !== 'container') return fail(E.EINVAL);
    const unmap = decodeDmaUnmap(buffer);
    // type1 unmaps every mapping wholly inside the range; one cut in half is EINVAL.
    for (const [iova, size] of [...file.dma]) {
      const inside = iova >= unmap.iova && iova + size <= unmap.iova + unmap.size;
      const overlapping = iova < unmap.iova + unmap.size && unmap.iova < iova + size;
      if (inside) file.dma.delete(iova);
      else if (overlapping) return fail(E.EINVAL);
    }
    return 0;
  }
}

/** KVM_SET_USER_MEMORY_REGION semantics of virt/kvm/kvm_main.c for the cases the library can produce. */
function kvmSetRegion(
  slots: Map<number, KvmUserspaceMemoryRegion>,
  r: KvmUserspaceMemoryRegion,
  page: bigint,
  nrMemslots: number,
  fail: (errno: number) => never,
): void {
  if ((r.flags & ~3) !== 0) fail(E.EINVAL);
  if (r.memorySize % page !== 0n || r.guestPhysAddr % page !== 0n || r.userspaceAddr % page !== 0n) fail(E.EINVAL);
  if (r.slot >= nrMemslots) fail(E.EINVAL);
  if (r.guestPhysAddr + r.memorySize > (1n << 64n) - 1n) fail(E.EINVAL); // a u64 wrap in the kernel
  const existing = slots.get(r.slot);
  if (r.memorySize === 0n) {
    if (!existing) fail(E.EINVAL);
    slots.delete(r.slot);
    return;
  }
  if (existing) {
    if (existing.memorySize !== r.memorySize || existing.userspaceAddr !== r.userspaceAddr) fail(E.EINVAL);
    if (((existing.flags ^ r.flags) & 2) !== 0) fail(E.EINVAL); // READONLY cannot be toggled in place
  }
  for (const [id, other] of slots) {
    if (id === r.slot) continue;
    if (r.guestPhysAddr < other.guestPhysAddr + other.memorySize && other.guestPhysAddr < r.guestPhysAddr + r.memorySize) fail(E.EEXIST);
  }
  slots.set(r.slot, { ...r });
}

/** Capability chain bytes as vfio-pci lays them out: 8-byte aligned, `next` absolute, last next = 0. */
export function encodeCapChain(caps: readonly RegionCapability[], start: number): Buffer {
  const bodies = caps.map(capBody);
  const parts: Buffer[] = [];
  let offset = start;
  bodies.forEach((body, i) => {
    const size = roundUp(BigInt(8 + body.length), 8n);
    const header = Buffer.alloc(Number(size));
    const cap = caps[i]!;
    header.writeUInt16LE(cap.id, 0);
    header.writeUInt16LE(cap.version, 2);
    header.writeUInt32LE(i === bodies.length - 1 ? 0 : offset + Number(size), 4);
    body.copy(header, 8);
    parts.push(header);
    offset += Number(size);
  });
  return Buffer.concat(parts);
}

function capBody(cap: RegionCapability): Buffer {
  switch (cap.kind) {
    case 'sparse-mmap': {
      const b = Buffer.alloc(8 + cap.areas.length * 16);
      b.writeUInt32LE(cap.areas.length, 0);
      cap.areas.forEach((a, i) => {
        b.writeBigUInt64LE(a.offset, 8 + i * 16);
        b.writeBigUInt64LE(a.size, 16 + i * 16);
      });
      return b;
    }
    case 'type': {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(cap.type, 0);
      b.writeUInt32LE(cap.subtype, 4);
      return b;
    }
    case 'msix-mappable':
      return Buffer.alloc(0);
    case 'unknown':
      return Buffer.from(cap.data, 'hex');
  }
}

function roundUp(value: bigint, to: bigint): bigint {
  return ((value + to - 1n) / to) * to;
}
