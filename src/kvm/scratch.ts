/**
 * `HostScratch`: one page of host memory the library owns, for the ioctls whose argument struct holds a
 * *host address* of a value (KVM_{GET,SET}_ONE_REG, KVM_{GET,SET,HAS}_DEVICE_ATTR). A JS Buffer's address
 * is never handed to the kernel: the value goes through this mmap, which has an explicit end of life.
 */
import { PROT, type HostMapping, type Syscalls } from '../sys/syscalls.js';
import { KvmError } from './errors.js';

/** Number of u64 cells the library uses; a page is always larger. */
const CELLS = 8;

export class HostScratch implements Disposable {
  readonly #sys: Syscalls;
  readonly #mapping: HostMapping;
  readonly #view: DataView;
  #closed = false;

  private constructor(sys: Syscalls, mapping: HostMapping, view: DataView) {
    this.#sys = sys;
    this.#mapping = mapping;
    this.#view = view;
  }

  /**
   * Maps one page of an anonymous memfd (closed right away: the mapping keeps the memory).
   * @throws SystemError when memfd_create, ftruncate or mmap fails (nothing is left behind).
   */
  static create(sys: Syscalls, name = 'vfio-bars-scratch'): HostScratch {
    const pageSize = BigInt(sys.pageSize());
    const fd = sys.memfdCreate(name, 0);
    let mapping: HostMapping;
    try {
      sys.ftruncate(fd, pageSize);
      mapping = sys.mmap(fd, 0n, pageSize, PROT.READ | PROT.WRITE);
    } finally {
      closeQuietly(sys, fd);
    }
    if (!mapping.view) {
      sys.munmap(mapping);
      throw new KvmError('scratch page has no view', { code: 'NO_VIEW' });
    }
    return new HostScratch(sys, mapping, new DataView(mapping.view));
  }

  /** Stores `value` in cell `cell` (little-endian u64) and returns the cell's host address. */
  put(cell: number, value: bigint): bigint {
    this.#view.setBigUint64(this.#offset(cell), BigInt.asUintN(64, value), true);
    return this.address(cell);
  }

  /** The u64 in cell `cell` (what the kernel wrote there, after a GET ioctl). */
  get(cell: number): bigint {
    return this.#view.getBigUint64(this.#offset(cell), true);
  }

  /** Host address of cell `cell`. */
  address(cell: number): bigint {
    return this.#mapping.address + BigInt(this.#offset(cell));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sys.munmap(this.#mapping);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #offset(cell: number): number {
    if (this.#closed) throw new KvmError('scratch page is closed', { code: 'CLOSED' });
    if (!Number.isInteger(cell) || cell < 0 || cell >= CELLS) throw new RangeError(`scratch cell ${cell} is not in 0..${CELLS - 1}`);
    return cell * 8;
  }
}

/** A memfd's close cannot fail in a way that matters (Linux releases the fd even then); never lose the mapping over it. */
function closeQuietly(sys: Syscalls, fd: number): void {
  try {
    sys.close(fd);
  } catch {
    // The fd is gone either way.
  }
}
