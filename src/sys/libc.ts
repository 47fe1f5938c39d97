/**
 * koffi bindings to the libc calls the library makes. Loaded lazily, once, so importing vfio-bars
 * (for planning only, say) never touches FFI. Every pointer argument is a Buffer we encoded ourselves:
 * koffi 3 aborts the process on a wrongly typed struct field, so structs never cross as JS objects.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';

type KoffiModule = typeof Koffi;

export interface Libc {
  readonly koffi: KoffiModule;
  open(path: string, flags: number, mode: number): number;
  close(fd: number): number;
  ioctlPtr(fd: number, request: number, arg: Buffer): number;
  ioctlVal(fd: number, request: number, arg: number): number;
  pread(fd: number, buf: Buffer, count: number, offset: bigint): number;
  pwrite(fd: number, buf: Buffer, count: number, offset: bigint): number;
  sysconf(name: number): number;
  eventfd(initval: number, flags: number): number;
  read(fd: number, buf: Buffer, count: number): number;
  write(fd: number, buf: Buffer, count: number): number;
  memfd_create(name: string, flags: number): number;
  ftruncate(fd: number, length: bigint): number;
}

let cached: Libc | undefined;

/** The libc bindings (loaded on first use). */
export function libc(): Libc {
  cached ??= loadLibc();
  return cached;
}

function loadLibc(): Libc {
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as KoffiModule;
  const lib = koffi.load('libc.so.6');
  // Two fixed prototypes instead of a variadic ioctl: on x86-64 and aarch64 Linux an integer or pointer
  // third argument is passed identically either way, and fixed prototypes avoid per-call type strings.
  return {
    koffi,
    open: lib.func('int open(const char *path, int flags, uint32_t mode)') as Libc['open'],
    close: lib.func('int close(int fd)') as Libc['close'],
    ioctlPtr: lib.func('int ioctl(int fd, unsigned long request, void *arg)') as Libc['ioctlPtr'],
    ioctlVal: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as Libc['ioctlVal'],
    pread: lib.func('long pread(int fd, void *buf, size_t count, int64_t offset)') as Libc['pread'],
    pwrite: lib.func('long pwrite(int fd, const void *buf, size_t count, int64_t offset)') as Libc['pwrite'],
    sysconf: lib.func('long sysconf(int name)') as Libc['sysconf'],
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)') as Libc['eventfd'],
    read: lib.func('long read(int fd, void *buf, size_t count)') as Libc['read'],
    write: lib.func('long write(int fd, const void *buf, size_t count)') as Libc['write'],
    memfd_create: lib.func('int memfd_create(const char *name, unsigned int flags)') as Libc['memfd_create'],
    ftruncate: lib.func('int ftruncate(int fd, int64_t length)') as Libc['ftruncate'],
  };
}
