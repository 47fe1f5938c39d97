import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { SystemError, errnoName } from '../../src/sys/system-error.js';
import { PROT } from '../../src/sys/syscalls.js';
import type { Shim } from '../../src/sys/shim.js';
import { captureError } from '../helpers/capture-error.js';

const sys = realSyscalls();
const PAGE = BigInt(sys.pageSize());

function memfd(size: bigint): number {
  const fd = sys.memfdCreate('vfio-bars-sys-test', 0);
  sys.ftruncate(fd, size);
  return fd;
}

describe('realSyscalls (koffi + N-API shim)', () => {
  it('reports the host page size', () => {
    expect(sys.pageSize()).toBe(4096);
  });

  it('open of a missing file is a SystemError ENOENT naming the path', () => {
    const error = captureError(() => sys.open('/nonexistent/vfio-bars', 0));
    expect(error).toBeInstanceOf(SystemError);
    expect(error).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open', path: '/nonexistent/vfio-bars' });
    expect(errnoName(22)).toBe('EINVAL');
    expect(errnoName(4242)).toBe('E4242');
    // Linux-only errnos Node does not name: 6.12's cdev bind answers EBADFD (77) for a non-iommufd fd.
    expect(errnoName(77)).toBe('EBADFD');
    expect(errnoName(524)).toBe('ENOTSUPP');
  });

  it('ioctl failures name the ioctl: EBADF on a closed fd, ENOTTY on a memfd', () => {
    expect(captureError(() => sys.ioctl(999_999, 'VFIO_GET_API_VERSION'))).toMatchObject({ code: 'EBADF', ioctl: 'VFIO_GET_API_VERSION', fd: 999_999 });
    const fd = memfd(PAGE);
    expect(captureError(() => sys.ioctl(fd, 'VFIO_DEVICE_GET_INFO', Buffer.alloc(24)))).toMatchObject({ code: 'ENOTTY', ioctl: 'VFIO_DEVICE_GET_INFO' });
    expect((captureError(() => sys.ioctl(fd, 'KVM_GET_API_VERSION')) as Error).message).toBe(`ioctl KVM_GET_API_VERSION (fd ${fd}): ENOTTY`);
    sys.close(fd);
  });

  it('pread/pwrite take offsets beyond 2^32 without truncation', () => {
    const offset = (1n << 32n) + 0x1230n;
    const fd = memfd(offset + PAGE);
    sys.pwrite(fd, Buffer.from('vfio-bars'), offset);
    const back = Buffer.alloc(9);
    expect(sys.pread(fd, back, offset)).toBe(9);
    expect(back.toString()).toBe('vfio-bars');
    const low = Buffer.alloc(9);
    sys.pread(fd, low, 0x1230n); // the truncated offset holds zeros
    expect(low.equals(Buffer.alloc(9))).toBe(true);
    expect(() => sys.pread(fd, low, -1n)).toThrow(RangeError);
    sys.close(fd);
  });

  it('mmap exposes the memory as a view; munmap detaches it so later access throws, not crashes', () => {
    const fd = memfd(2n * PAGE);
    const mapping = sys.mmap(fd, 0n, 2n * PAGE, PROT.READ | PROT.WRITE);
    new DataView(mapping.view!).setUint32(Number(PAGE) + 4, 0xdead_beef, true);
    const back = Buffer.alloc(4);
    sys.pread(fd, back, PAGE + 4n);
    expect(back.readUInt32LE(0)).toBe(0xdead_beef);
    const view = mapping.view!;
    sys.munmap(mapping);
    expect(view.byteLength).toBe(0);
    expect(() => new DataView(view).getUint32(0)).toThrow(TypeError);
    sys.close(fd);
  });

  it('mmap with align places the mapping on that boundary (huge PFN friendly)', () => {
    const align = 2n * 1024n * 1024n;
    const fd = memfd(align);
    const mapping = sys.mmap(fd, 0n, align, PROT.READ, { align });
    expect(mapping.address % align).toBe(0n);
    sys.munmap(mapping);
    expect(() => sys.mmap(fd, 0n, PAGE, PROT.READ, { align: 3n * PAGE })).toThrow(RangeError);
    sys.close(fd);
  });

  it('mmap failures are SystemErrors (EINVAL for an unaligned offset, EBADF for a bad fd)', () => {
    const fd = memfd(PAGE);
    expect(captureError(() => sys.mmap(fd, 0x800n, PAGE, PROT.READ))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    expect(captureError(() => sys.mmap(999_999, 0n, PAGE, PROT.READ))).toMatchObject({ code: 'EBADF', syscall: 'mmap' });
    sys.close(fd);
  });

  it('the shim refuses lossy u64 and wrong-typed arguments instead of wrapping', () => {
    const require = createRequire(import.meta.url);
    const shim = (require('node-gyp-build') as (dir: string) => Shim)(new URL('../..', import.meta.url).pathname);
    expect(() => shim.setUserMemoryRegion(0, 0, 0, -1n, 0n, 0n)).toThrow(RangeError);
    expect(() => shim.setUserMemoryRegion(0, 0, 0, 1n << 64n, 0n, 0n)).toThrow(/outside u64/);
    expect(() => shim.setUserMemoryRegion(0, 0, 0, 5 as unknown as bigint, 0n, 0n)).toThrow(TypeError);
    expect(() => shim.setUserMemoryRegion(0, -1, 0, 0n, 0n, 0n)).toThrow(/slot must be a u32/);
    expect(() => shim.mmap(0, 0n, 0n, 0, 1, 0n)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'mmap' }) as Error);
    // A bad fd reaches the kernel and comes back as an errno, not a crash.
    expect(() => shim.setUserMemoryRegion(999_999, 0, 0, 0n, 0n, 0n)).toThrow(expect.objectContaining({ code: 'EBADF', errno: 9, syscall: 'ioctl' }) as Error);
  });
});
