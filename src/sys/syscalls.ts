/* The kernel interface (documented on Syscalls). */
import type { IoctlName, KvmUserspaceMemoryRegion } from '../uapi/index.js';

/** A host mapping made by {@link Syscalls.mmap}. Its `view` is detached by `munmap`. */
export interface HostMapping {
  /** Host virtual address (what KVM's `userspace_addr` gets). */
  readonly address: bigint;
  /** Length in bytes, a multiple of the host page size. */
  readonly length: bigint;
  /**
   * Bytes of the mapping, or `undefined` when the mapping is too large to expose as one
   * ArrayBuffer. Detached on `munmap`, so a use after unmap throws a TypeError instead of crashing.
   */
  readonly view: ArrayBuffer | undefined;
}

/** Options of {@link Syscalls.mmap}. */
export interface MmapOptions {
  /** `MAP_SHARED` (the default; VFIO requires it) or `MAP_PRIVATE`. */
  shared?: boolean;
  /**
   * Align the host virtual address to this power of two (e.g. min(pow2(size), 1 GiB)) so the kernel
   * can use huge PFN mappings for large BARs. The shim over-reserves and trims.
   */
  align?: bigint;
  /**
   * With `align`: place the mapping so `address % align === alignOffset` (a page multiple below `align`).
   * Huge PFN maps need the address congruent to the file offset modulo the block, not just aligned.
   */
  alignOffset?: bigint;
}

/** mmap(2) protection bits (`PROT_*`), for {@link Syscalls.mmap}. */
export const PROT = {
  /** No access. */ NONE: 0,
  /** Readable. */ READ: 1,
  /** Writable. */ WRITE: 2,
  /** Executable. */ EXEC: 4,
} as const;
export const O_FLAGS = { RDONLY: 0, WRONLY: 1, RDWR: 2, CLOEXEC: 0o2000000, NONBLOCK: 0o4000 } as const;
/** eventfd(2) flags: EFD_NONBLOCK and EFD_CLOEXEC share O_NONBLOCK's and O_CLOEXEC's values. */
export const EFD_FLAGS = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;

/**
 * The one interface through which the library reaches the kernel (the rust-vmm `vfio-ioctls` pattern).
 * {@link realSyscalls} implements it with koffi and the N-API shim; tests use a fault-injecting fake that
 * answers the way the real kernel does, and a VMM can wrap it (log, count, inject faults) and pass it in
 * wherever an entry point takes `syscalls`. Every method throws a {@link SystemError} on failure, with
 * errno read right after the failing call.
 *
 * @example
 * const real = realSyscalls();
 * const logged: Syscalls = Object.assign(Object.create(real) as Syscalls, {
 *   ioctl: (fd: number, request: IoctlName, arg?: Buffer | number) => (console.log(request), real.ioctl(fd, request, arg)),
 * });
 * using vm = KvmVm.create({ syscalls: logged });
 */
export interface Syscalls {
  /** `sysconf(_SC_PAGESIZE)`: 4096 on x86-64, 4096/16384/65536 on aarch64. */
  pageSize(): number;
  /** open(2); implementations always add O_CLOEXEC. */
  open(path: string, flags: number): number;
  /** close(2). */
  close(fd: number): void;
  /**
   * ioctl(2) by kernel name. `arg` is a Buffer (passed by pointer, read back in place) or an integer
   * passed by value (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, KVM_CREATE_VCPU...). Returns the
   * non-negative result (a new fd for *_GET_DEVICE_FD / KVM_CREATE_VM, an answer for CHECK_EXTENSION).
   */
  ioctl(fd: number, request: IoctlName, arg?: Buffer | number): number;
  /** pread(2): fills `buffer` from `offset` of `fd` (a VFIO region: region offset + offset); returns the bytes read. */
  pread(fd: number, buffer: Buffer, offset: bigint): number;
  /** pwrite(2): writes `buffer` at `offset` of `fd`; returns the bytes written. */
  pwrite(fd: number, buffer: Buffer, offset: bigint): number;
  /** mmap(2) of `length` bytes of `fd` at `offset`. */
  mmap(fd: number, offset: bigint, length: bigint, prot: number, options?: MmapOptions): HostMapping;
  /** munmap(2); detaches the mapping's view. Unmapping twice is a programming error (throws). */
  munmap(mapping: HostMapping): void;
  /** KVM_SET_USER_MEMORY_REGION on a VM fd (the N-API shim owns this ioctl). */
  setUserMemoryRegion(vmFd: number, region: KvmUserspaceMemoryRegion): void;
  /** eventfd(2) with `EFD_FLAGS`; returns the new fd (MSI-X triggers, KVM irqfds). */
  eventfd(initval: number, flags: number): number;
  /**
   * read(2) at the file position: used on eventfds (8-byte counters; a nonblocking empty one gives EAGAIN).
   * Returns the bytes read.
   */
  read(fd: number, buffer: Buffer): number;
  /** write(2) at the file position: signals an eventfd (adds the u64 in `buffer` to its counter). */
  write(fd: number, buffer: Buffer): number;
  /** memfd_create(2): an anonymous file that stands in for a device region in tests and benchmarks. */
  memfdCreate(name: string, flags: number): number;
  /** ftruncate(2): sets a memfd's size. */
  ftruncate(fd: number, length: bigint): void;
}
