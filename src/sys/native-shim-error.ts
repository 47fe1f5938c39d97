import { VfioBarsError } from '../errors.js';

/**
 * Why the native shim could not be used: `NATIVE_MISSING` when no binary for this platform exists (no prebuild
 * in the package and nothing built from source), `NATIVE_LOAD_FAILED` when one exists but the dynamic loader
 * refuses it (another libc, a missing symbol).
 */
export type NativeShimErrorCode = 'NATIVE_MISSING' | 'NATIVE_LOAD_FAILED';

/**
 * The N-API shim (mmap, munmap, KVM_SET_USER_MEMORY_REGION) is not available. Thrown on first use, never at
 * import, so planning and description JSON keep working on a machine without it. The message says how to fix it.
 */
export class NativeShimError extends VfioBarsError {
  readonly code: NativeShimErrorCode;
  /** The package folder searched (its `prebuilds/` and `build/`). */
  readonly packageRoot: string;
  /** `linux-x64-glibc` style tuple of the running Node. */
  readonly platform: string;

  constructor(code: NativeShimErrorCode, packageRoot: string, platform: string, options?: ErrorOptions) {
    super(nativeShimMessage(code, packageRoot, platform), options);
    this.code = code;
    this.packageRoot = packageRoot;
    this.platform = platform;
  }
}

const BUILD_HINT = 'build it from source: install python3, make and a C compiler (Debian: apt-get install python3 make g++), '
  + 'then run `npm rebuild vfio-bars`';

function nativeShimMessage(code: NativeShimErrorCode, packageRoot: string, platform: string): string {
  const needed = 'the native shim is needed for mmap and KVM slots (planning works without it)';
  if (code === 'NATIVE_MISSING') {
    return `no native shim for ${platform} in ${packageRoot} (prebuilds/ or build/): ${needed}; `
      + `prebuilt binaries ship for linux-x64 and linux-arm64 (glibc 2.28+) and linux-x64 musl; otherwise ${BUILD_HINT}`;
  }
  return `the native shim for ${platform} in ${packageRoot} does not load (see cause): ${needed}; ${BUILD_HINT}`;
}
