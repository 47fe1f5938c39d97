import { constants } from 'node:os';
import { VfioBarsError } from '../errors.js';

/**
 * Linux errnos the kernel's VFIO/KVM paths return that Node's `os.constants.errno` does not name (it lists only
 * the portable ones): 6.12's cdev bind answers EBADFD for a valid fd that is not an iommufd, and ENOTSUPP (524,
 * kernel-internal) leaks to userspace from some ioctls.
 */
const LINUX_ONLY_ERRNOS: readonly (readonly [number, string])[] = [[77, 'EBADFD'], [121, 'EREMOTEIO'], [524, 'ENOTSUPP']];

const ERRNO_NAMES = new Map<number, string>([
  ...LINUX_ONLY_ERRNOS,
  ...Object.entries(constants.errno).map(([name, n]): [number, string] => [n, name]),
]);

/** `EINVAL` for 22, `E123` for an errno Node does not know. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

export interface SystemErrorDetails {
  errno: number;
  syscall: string;
  /** ioctl request name, for ioctl(2) failures. */
  ioctl?: string;
  path?: string;
  fd?: number;
}

/**
 * A failed system call, with errno read right after the call. Every method of {@link Syscalls} throws it;
 * the library's layers wrap it in their own error (VfioError, KvmError, MapError) with it as `cause`.
 *
 * @example
 * try {
 *   realSyscalls().open('/dev/vfio/7', 2); // O_RDWR
 * } catch (e) {
 *   if (e instanceof SystemError && e.code === 'EBUSY') console.error(`${e.path} is open elsewhere`);
 *   else throw e;
 * }
 */
export class SystemError extends VfioBarsError {
  /** errno name, e.g. `'EINVAL'`. */
  readonly code: string;
  /** The errno number, e.g. 22. */
  readonly errno: number;
  /** The system call that failed, e.g. `'ioctl'`, `'mmap'`, `'open'`. */
  readonly syscall: string;
  /** The ioctl request name, for ioctl(2) failures (e.g. `'VFIO_DEVICE_GET_REGION_INFO'`). */
  readonly ioctl: string | undefined;
  /** The path, for open(2) and friends. */
  readonly path: string | undefined;
  /** The file descriptor the call was made on, when there was one. */
  readonly fd: number | undefined;

  constructor(details: SystemErrorDetails, options?: ErrorOptions) {
    const code = errnoName(details.errno);
    const what = details.ioctl ? `ioctl ${details.ioctl}` : details.syscall;
    const where = details.path ? ` ${details.path}` : details.fd !== undefined ? ` (fd ${details.fd})` : '';
    super(`${what}${where}: ${code}`, options);
    this.code = code;
    this.errno = details.errno;
    this.syscall = details.syscall;
    this.ioctl = details.ioctl;
    this.path = details.path;
    this.fd = details.fd;
  }
}
