import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NativeShimError, VfioBarsError } from '../../src/index.js';
import { loadShim, shim } from '../../src/sys/shim.js';
import { captureError } from '../helpers/capture-error.js';

describe('native shim loader', () => {
  it('loads the shim of this package (a prebuild or a local build)', () => {
    expect(typeof shim().mmap).toBe('function');
  });

  it('a folder with no binary gives a typed NATIVE_MISSING error that says what to do', () => {
    const error = captureError(() => loadShim(import.meta.dirname));
    expect(error).toBeInstanceOf(NativeShimError);
    expect(error).toBeInstanceOf(VfioBarsError);
    const shimError = error as NativeShimError;
    expect(shimError.code).toBe('NATIVE_MISSING');
    expect(shimError.platform).toMatch(/^linux-(x64|arm64)-(glibc|musl)$/);
    expect(shimError.message).toContain('npm rebuild vfio-bars');
    expect(shimError.message).toContain('python3, make and a C compiler');
    expect(shimError.cause).toBeInstanceOf(Error);
  });

  it('a binary that does not load gives NATIVE_LOAD_FAILED', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'vfio-bars-shim-'));
    try {
      const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'vfio-bars.node'), 'not an ELF file');
      const error = captureError(() => loadShim(root));
      expect(error).toBeInstanceOf(NativeShimError);
      expect((error as NativeShimError).code).toBe('NATIVE_LOAD_FAILED');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('native shim errors (errno names mapped in C, no strerrorname_np)', () => {
  it('a failed mmap carries the errno, its name as code, and the syscall', () => {
    const error = captureError(() => shim().mmap(-1, 0n, 4096n, 1, 1, 0n)) as Error & { code: string; errno: number; syscall: string };
    expect(error).toMatchObject({ code: 'EBADF', errno: 9, syscall: 'mmap' });
    expect(error.message).toMatch(/^mmap: EBADF \(/);
  });
});
