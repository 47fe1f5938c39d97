/**
 * Loader and typings for the N-API shim (native/vfio_bars.c), which owns mmap/munmap and
 * KVM_SET_USER_MEMORY_REGION. Taken from prebuilds/ by node-gyp-build, or from build/ when built at install.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { NativeShimError } from './native-shim-error.js';

export interface Shim {
  setUserMemoryRegion(vmFd: number, slot: number, flags: number, guestPhysAddr: bigint, memorySize: bigint, userspaceAddr: bigint): void;
  mmap(
    fd: number,
    offset: bigint,
    length: bigint,
    prot: number,
    flags: number,
    align: bigint,
    alignOffset?: bigint,
  ): [address: bigint, buffer?: ArrayBuffer];
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

interface NodeGypBuild {
  /** Path of the binary matching this Node, or throws when there is none. */
  resolve(dir: string): string;
}

const require = createRequire(import.meta.url);

let cached: Shim | undefined;

/**
 * The native shim (loaded on first use).
 * @throws {NativeShimError} `NATIVE_MISSING` or `NATIVE_LOAD_FAILED`, with what to do about it.
 */
export function shim(): Shim {
  // src/sys or dist/sys → the package root holds binding.gyp, build/ and prebuilds/.
  cached ??= loadShim(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..'));
  return cached;
}

/**
 * Finds and loads the shim under `packageRoot` in two steps, so "there is no binary" and "the binary does
 * not load" become different typed errors without reading node-gyp-build's messages.
 * @throws {NativeShimError}
 */
export function loadShim(packageRoot: string): Shim {
  const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
  let file: string;
  try {
    file = nodeGypBuild.resolve(packageRoot);
  } catch (error) {
    throw new NativeShimError('NATIVE_MISSING', packageRoot, runtimeTuple(), { cause: error });
  }
  try {
    return require(file) as Shim;
  } catch (error) {
    throw new NativeShimError('NATIVE_LOAD_FAILED', packageRoot, runtimeTuple(), { cause: error });
  }
}

/** `linux-x64-glibc`: what node-gyp-build matches prebuilds against (it reads LIBC from the environment too). */
function runtimeTuple(): string {
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  const libc = process.env.LIBC ?? (header?.glibcVersionRuntime === undefined ? 'musl' : 'glibc');
  return `${process.platform}-${process.arch}-${libc}`;
}
