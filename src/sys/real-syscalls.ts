/**
 * The real kernel behind the `Syscalls` interface: libc through koffi, mmap and KVM slots through the
 * N-API shim. errno is read immediately after each failing call and turned into a SystemError.
 */
import { IOCTL, type IoctlName, type KvmUserspaceMemoryRegion, checkU64 } from '../uapi/index.js';
import { libc } from './libc.js';
import { isShimError, shim } from './shim.js';
import { SystemError, type SystemErrorDetails } from './system-error.js';
import { O_FLAGS, type HostMapping, type MmapOptions, type Syscalls } from './syscalls.js';

const SC_PAGESIZE = 30;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const EINVAL = 22;
/** Pages are never larger than this on the hosts we support; a bigger align is a caller bug. */
const MAX_ALIGN = 1n << 30n;

class RealSyscalls implements Syscalls {
  #pageSize: number | undefined;
  /**
   * Mappings this object made and has not unmapped, by identity. munmap of anything else is refused:
   * the address may since hold someone else's mapping, and unmapping it would crash the process later.
   */
  readonly #live = new WeakSet<HostMapping>();

  pageSize(): number {
    this.#pageSize ??= this.#check(libc().sysconf(SC_PAGESIZE), { syscall: 'sysconf' });
    return this.#pageSize;
  }

  open(path: string, flags: number): number {
    return this.#check(libc().open(path, flags | O_FLAGS.CLOEXEC, 0), { syscall: 'open', path });
  }

  close(fd: number): void {
    this.#check(libc().close(fd), { syscall: 'close', fd });
  }

  ioctl(fd: number, request: IoctlName, arg: Buffer | number = 0): number {
    const number = IOCTL[request];
    const result = typeof arg === 'number' ? libc().ioctlVal(fd, number, arg) : libc().ioctlPtr(fd, number, arg);
    return this.#check(result, { syscall: 'ioctl', ioctl: request, fd });
  }

  pread(fd: number, buffer: Buffer, offset: bigint): number {
    checkU64('offset', offset);
    return this.#check(libc().pread(fd, buffer, buffer.length, offset), { syscall: 'pread', fd });
  }

  pwrite(fd: number, buffer: Buffer, offset: bigint): number {
    checkU64('offset', offset);
    return this.#check(libc().pwrite(fd, buffer, buffer.length, offset), { syscall: 'pwrite', fd });
  }

  mmap(fd: number, offset: bigint, length: bigint, prot: number, options: MmapOptions = {}): HostMapping {
    const flags = options.shared === false ? MAP_PRIVATE : MAP_SHARED;
    const { align, alignOffset } = this.#placement(options);
    try {
      const [address, buffer] = shim().mmap(fd, offset, length, prot, flags, align, alignOffset);
      const mapping: HostMapping = Object.freeze({ address, length, view: buffer });
      this.#live.add(mapping);
      return mapping;
    } catch (error) {
      throw this.#fromShim(error, { syscall: 'mmap', fd });
    }
  }

  /**
   * Unmaps a mapping this object returned from `mmap`, once. A second call, or a copy of the object,
   * throws SystemError EINVAL and unmaps nothing (the address range may belong to someone else now).
   */
  munmap(mapping: HostMapping): void {
    if (typeof mapping !== 'object' || mapping === null || !this.#live.has(mapping)) {
      throw new SystemError({ syscall: 'munmap', errno: EINVAL });
    }
    try {
      shim().munmap(mapping.address, mapping.length, mapping.view);
    } catch (error) {
      throw this.#fromShim(error, { syscall: 'munmap' });
    }
    this.#live.delete(mapping);
  }

  setUserMemoryRegion(vmFd: number, region: KvmUserspaceMemoryRegion): void {
    try {
      // The shim checks each bigint is a lossless u64 and each number a u32: no JS-side encoding needed.
      shim().setUserMemoryRegion(vmFd, region.slot, region.flags, region.guestPhysAddr, region.memorySize, region.userspaceAddr);
    } catch (error) {
      throw this.#fromShim(error, { syscall: 'ioctl', ioctl: 'KVM_SET_USER_MEMORY_REGION', fd: vmFd });
    }
  }

  eventfd(initval: number, flags: number): number {
    return this.#check(libc().eventfd(initval, flags | O_FLAGS.CLOEXEC), { syscall: 'eventfd' });
  }

  read(fd: number, buffer: Buffer): number {
    return this.#check(libc().read(fd, buffer, buffer.length), { syscall: 'read', fd });
  }

  write(fd: number, buffer: Buffer): number {
    return this.#check(libc().write(fd, buffer, buffer.length), { syscall: 'write', fd });
  }

  memfdCreate(name: string, flags: number): number {
    const MFD_CLOEXEC = 1;
    return this.#check(libc().memfd_create(name, flags | MFD_CLOEXEC), { syscall: 'memfd_create' });
  }

  ftruncate(fd: number, length: bigint): void {
    checkU64('length', length);
    this.#check(libc().ftruncate(fd, length), { syscall: 'ftruncate', fd });
  }

  /** The shim's (align, alignOffset): 0 when aligning to a page or less, which mmap does anyway. */
  #placement(options: MmapOptions): { align: bigint; alignOffset: bigint } {
    const align = options.align ?? 0n;
    const alignOffset = options.alignOffset ?? 0n;
    if (typeof align !== 'bigint' || align < 0n || (align !== 0n && (align & (align - 1n)) !== 0n)) {
      throw new RangeError(`mmap align ${String(align)} is not a power of two`);
    }
    if (align > MAX_ALIGN) throw new RangeError(`mmap align ${align} exceeds 1 GiB`);
    const page = BigInt(this.pageSize());
    if (typeof alignOffset !== 'bigint' || alignOffset < 0n || alignOffset % page !== 0n || (alignOffset !== 0n && alignOffset >= align)) {
      throw new RangeError(`mmap alignOffset ${String(alignOffset)} must be a page multiple below align ${align}`);
    }
    return align > page ? { align, alignOffset } : { align: 0n, alignOffset: 0n };
  }

  /** libc convention: -1 means failure and errno says why; read it before anything else runs. */
  #check(result: number, details: Omit<SystemErrorDetails, 'errno'>): number {
    if (result < 0) throw new SystemError({ ...details, errno: libc().koffi.errno() });
    return result;
  }

  #fromShim(error: unknown, details: Omit<SystemErrorDetails, 'errno'>): unknown {
    return isShimError(error) ? new SystemError({ ...details, errno: error.errno }, { cause: error }) : error;
  }
}

let instance: Syscalls | undefined;

/**
 * The process-wide real {@link Syscalls}: libc through koffi (errno read right after each failing call), and
 * the N-API shim for mmap, munmap and KVM_SET_USER_MEMORY_REGION. libc and the shim load on first use, not here.
 *
 * @throws NativeShimError `NATIVE_MISSING` / `NATIVE_LOAD_FAILED` from the first mmap or slot call when
 *   no prebuilt or locally built binary loads (the message says what to install).
 * @example
 * const pageSize = BigInt(realSyscalls().pageSize()); // 4096, 16384 or 65536
 */
export function realSyscalls(): Syscalls {
  instance ??= new RealSyscalls();
  return instance;
}
