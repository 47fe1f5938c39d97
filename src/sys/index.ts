export * from './syscalls.js';
export * from './system-error.js';
export { realSyscalls } from './real-syscalls.js';
export { NativeShimError, type NativeShimErrorCode } from './native-shim-error.js';
