/**
 * Loader and typings for the N-API shim (native/vfio_bars.c), which owns mmap/munmap and
 * KVM_SET_USER_MEMORY_REGION. Built at install by node-gyp, or taken from prebuilds/ by node-gyp-build.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface Shim {
  setUserMemoryRegion(vmFd: number, slot: number, flags: number, guestPhysAddr: bigint, memorySize: bigint, userspaceAddr: bigint): void;
  mmap(fd: number, offset: bigint, length: bigint, prot: number, flags: number, align: bigint, alignOffset?: bigint): { address: bigint; buffer?: ArrayBuffer };
  munmap(address: bigint, length: bigint, buffer?: ArrayBuffer): void;
}

/** The shim's errors carry these (see throw_errno in native/vfio_bars.c). */
export interface ShimError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isShimError(error: unknown): error is ShimError {
  return error instanceof Error && typeof (error as Partial<ShimError>).errno === 'number';
}

let cached: Shim | undefined;

/** The native shim (loaded on first use). */
export function shim(): Shim {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => Shim;
    // src/sys or dist/sys → the package root holds binding.gyp, build/ and prebuilds/.
    const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
    cached = nodeGypBuild(packageRoot);
  }
  return cached;
}
