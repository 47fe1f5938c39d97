/**
 * A Syscalls that does nothing and answers at once (KVM's version and capabilities, fresh fds and
 * addresses): with it a bench case's wall time is the library's own JavaScript above the kernel interface.
 */
import type { HostMapping, MmapOptions, Syscalls } from 'vfio-bars';

type IoctlName = Parameters<Syscalls['ioctl']>[1];

const KVM_ANSWERS: Partial<Record<IoctlName, number>> = { KVM_GET_API_VERSION: 12 };
const NR_MEMSLOTS = 10;

export function nullKernel(pageSize = 4096): Syscalls {
  let nextFd = 100;
  let nextAddress = 0x7f00_0000_0000n;
  return {
    pageSize: () => pageSize,
    open: () => nextFd++,
    close: () => undefined,
    ioctl: (_fd: number, request: IoctlName, arg?: Buffer | number) => {
      if (request === 'KVM_CHECK_EXTENSION') return arg === NR_MEMSLOTS ? 32_764 : 1;
      return KVM_ANSWERS[request] ?? nextFd++;
    },
    pread: (_fd: number, buffer: Buffer) => buffer.length,
    pwrite: (_fd: number, buffer: Buffer) => buffer.length,
    mmap: (_fd: number, _offset: bigint, length: bigint, _prot: number, options?: MmapOptions): HostMapping => {
      // Placed as the shim would: address % align === alignOffset (huge-PFN congruence).
      const align = options?.align ?? 0n;
      const address = align > 0n ? nextAddress - (nextAddress % align) + align + (options?.alignOffset ?? 0n) : nextAddress;
      nextAddress = address + length + BigInt(pageSize);
      return Object.freeze({ address, length, view: undefined });
    },
    munmap: () => undefined,
    setUserMemoryRegion: () => undefined,
    eventfd: () => nextFd++,
    read: (_fd: number, buffer: Buffer) => buffer.length,
    write: (_fd: number, buffer: Buffer) => buffer.length,
    memfdCreate: () => nextFd++,
    ftruncate: () => undefined,
  };
}
