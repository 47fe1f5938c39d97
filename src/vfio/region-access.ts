/**
 * Bounds-checked reads and writes of a device region (BAR, ROM, config space) through
 * `Syscalls.pread/pwrite` at `regionOffset + offset`: what the VMM uses for every trapped access that
 * must reach the device. Values are little-endian (PCI), 1/2/4-byte values are numbers and 8-byte
 * values bigints. The fixed-size paths reuse scratch buffers, so a trapped access allocates nothing.
 */
import { constants } from 'node:os';
import { hex } from '../errors.js';
import { SystemError } from '../sys/system-error.js';
import { VFIO_REGION_FLAGS } from '../uapi/vfio.js';
import type { VfioDeviceHandle } from './device-handle.js';
import type { DeviceDescription, RegionDescription } from './description.js';
import { VfioError } from './errors.js';

/** The access widths a CPU (and a PCI config access) can make. */
export type AccessSize = 1 | 2 | 4 | 8;

interface RegionBounds {
  readonly offset: bigint;
  readonly size: bigint;
  readonly flags: number;
}

/**
 * Region access for one device, with its region table cached (built once from `describe()` or from
 * the description you pass). Use it on hot paths; `readRegion`/`writeRegion` wrap a per-handle instance.
 */
export class RegionAccess {
  readonly #handle: VfioDeviceHandle;
  readonly #regions = new Map<number, RegionBounds>();
  readonly #scratch: Record<AccessSize, Buffer> = { 1: Buffer.alloc(1), 2: Buffer.alloc(2), 4: Buffer.alloc(4), 8: Buffer.alloc(8) };

  constructor(handle: VfioDeviceHandle, description: DeviceDescription = handle.describe()) {
    this.#handle = handle;
    for (const r of description.regions) this.#regions.set(r.index, boundsOf(r));
  }

  /** Reads `size` bytes at `offset` of region `index` (little-endian). */
  read(index: number, offset: bigint, size: 1 | 2 | 4): number;
  read(index: number, offset: bigint, size: 8): bigint;
  read(index: number, offset: bigint, size: AccessSize): number | bigint;
  read(index: number, offset: bigint, size: AccessSize): number | bigint {
    const scratch = this.#scratch[checkSize(size)];
    this.readInto(index, offset, scratch);
    return decodeLE(scratch, size);
  }

  /** Writes `value` as `size` little-endian bytes at `offset` of region `index`. */
  write(index: number, offset: bigint, size: AccessSize, value: number | bigint): void {
    const scratch = this.#scratch[checkSize(size)];
    encodeLE(scratch, size, value);
    this.writeFrom(index, offset, scratch);
  }

  /** Bulk read: fills `buffer` from `offset` of region `index`, or throws (never a silent short read). */
  readInto(index: number, offset: bigint, buffer: Buffer): void {
    const region = this.#bounds(index, offset, buffer.length, VFIO_REGION_FLAGS.READ, 'read');
    const done = this.#syscall('pread', index, offset, () => this.#handle.syscalls.pread(this.#handle.fd, buffer, region.offset + offset));
    if (done !== buffer.length) throw this.#short('read', index, offset, buffer.length, done);
  }

  /** Bulk write of `buffer` at `offset` of region `index`, or throws. */
  writeFrom(index: number, offset: bigint, buffer: Buffer): void {
    const region = this.#bounds(index, offset, buffer.length, VFIO_REGION_FLAGS.WRITE, 'write');
    const done = this.#syscall(
      'pwrite',
      index,
      offset,
      () => this.#handle.syscalls.pwrite(this.#handle.fd, buffer, region.offset + offset),
    );
    if (done !== buffer.length) throw this.#short('write', index, offset, buffer.length, done);
  }

  /**
   * pread at an absolute device-fd offset the caller has already bounds-checked against region `index`
   * (the MMIO dispatcher checks once, when it compiles a BAR). Short reads and errors throw like `readInto`.
   */
  readChecked(index: number, fdOffset: bigint, buffer: Buffer): void {
    let done: number;
    try {
      done = this.#handle.syscalls.pread(this.#handle.fd, buffer, fdOffset);
    } catch (error) {
      throw this.#wrap(error, 'pread', index, fdOffset);
    }
    if (done !== buffer.length) throw this.#short('read', index, fdOffset, buffer.length, done);
  }

  /** pwrite counterpart of {@link RegionAccess.readChecked}. */
  writeChecked(index: number, fdOffset: bigint, buffer: Buffer): void {
    let done: number;
    try {
      done = this.#handle.syscalls.pwrite(this.#handle.fd, buffer, fdOffset);
    } catch (error) {
      throw this.#wrap(error, 'pwrite', index, fdOffset);
    }
    if (done !== buffer.length) throw this.#short('write', index, fdOffset, buffer.length, done);
  }

  /** Offset of region `index` in the device fd, or undefined when the device has no such region. */
  regionOffset(index: number): bigint | undefined {
    return this.#regions.get(index)?.offset;
  }

  /** Size of region `index`, or undefined when the device has no such region. */
  regionSize(index: number): bigint | undefined {
    return this.#regions.get(index)?.size;
  }

  #bounds(index: number, offset: bigint, length: number, need: number, what: 'read' | 'write'): RegionBounds {
    const region = this.#regions.get(index);
    const bdf = this.#handle.bdf;
    if (!region) throw new VfioError(`${bdf}: no region ${index} to ${what}`, { code: 'NO_SUCH_REGION', bdf, region: index });
    if ((region.flags & need) === 0) {
      throw new VfioError(
        `${bdf}: region ${index} is not ${what === 'read' ? 'readable' : 'writable'}`,
        { code: what === 'read' ? 'NOT_READABLE' : 'NOT_WRITABLE', bdf, region: index },
      );
    }
    if (typeof offset !== 'bigint' || offset < 0n || offset + BigInt(length) > region.size || length === 0) {
      const message = `${bdf}: ${what} of ${length} bytes at ${String(offset)} is outside region ${index} (size ${hex(region.size)})`;
      throw new VfioError(message, { code: 'OUT_OF_RANGE', bdf, region: index });
    }
    return region;
  }

  #syscall(name: 'pread' | 'pwrite', index: number, offset: bigint, call: () => number): number {
    try {
      return call();
    } catch (error) {
      throw this.#wrap(error, name, index, offset);
    }
  }

  #wrap(error: unknown, name: 'pread' | 'pwrite', index: number, offset: bigint): unknown {
    if (!(error instanceof SystemError)) return error;
    return VfioError.fromSystem(
      error,
      `${this.#handle.bdf}: ${name} region ${index} at ${hex(offset)}`,
      { bdf: this.#handle.bdf, region: index },
    );
  }

  #short(what: 'read' | 'write', index: number, offset: bigint, wanted: number, done: number): VfioError {
    const bdf = this.#handle.bdf;
    return new VfioError(`${bdf}: short ${what} of region ${index} at ${hex(offset)}: ${done} of ${wanted} bytes`, {
      code: 'EIO', errno: constants.errno.EIO, bdf, region: index,
    });
  }
}

const cache = new WeakMap<VfioDeviceHandle, RegionAccess>();

function accessFor(handle: VfioDeviceHandle): RegionAccess {
  let access = cache.get(handle);
  if (!access) cache.set(handle, (access = new RegionAccess(handle)));
  return access;
}

/**
 * Reads 1, 2, 4 (number) or 8 (bigint) little-endian bytes at `offset` of region `regionIndex`.
 * Throws VfioError `OUT_OF_RANGE`, `NO_SUCH_REGION`, `NOT_READABLE`, `EIO` (short read) or the errno name.
 * @example
 * const cap = readRegion(device, 0, 0n, 8); // NVMe CAP register of BAR0
 */
export function readRegion(handle: VfioDeviceHandle, regionIndex: number, offset: bigint, size: 1 | 2 | 4): number;
export function readRegion(handle: VfioDeviceHandle, regionIndex: number, offset: bigint, size: 8): bigint;
export function readRegion(handle: VfioDeviceHandle, regionIndex: number, offset: bigint, size: AccessSize): number | bigint;
export function readRegion(handle: VfioDeviceHandle, regionIndex: number, offset: bigint, size: AccessSize): number | bigint {
  return accessFor(handle).read(regionIndex, offset, size);
}

/**
 * Writes `value` as 1, 2, 4 or 8 little-endian bytes at `offset` of region `regionIndex`.
 * Throws like {@link readRegion} (`NOT_WRITABLE` instead of `NOT_READABLE`), and RangeError for a value
 * that does not fit `size`.
 * @example
 * writeRegion(device, 7, 0x04n, 2, 0x0006); // config space: COMMAND = MEM | MASTER
 */
export function writeRegion(handle: VfioDeviceHandle, regionIndex: number, offset: bigint, size: AccessSize, value: number | bigint): void {
  accessFor(handle).write(regionIndex, offset, size, value);
}

/** Bulk read into `buffer` (its whole length) from `offset` of region `regionIndex`. Throws like readRegion. */
export function readRegionBytes(handle: VfioDeviceHandle, regionIndex: number, offset: bigint, buffer: Buffer): void {
  accessFor(handle).readInto(regionIndex, offset, buffer);
}

/** Bulk write of `buffer` at `offset` of region `regionIndex`. Throws like writeRegion. */
export function writeRegionBytes(handle: VfioDeviceHandle, regionIndex: number, offset: bigint, buffer: Buffer): void {
  accessFor(handle).writeFrom(regionIndex, offset, buffer);
}

function boundsOf(r: RegionDescription): RegionBounds {
  return { offset: r.offset, size: r.size, flags: r.flags };
}

function checkSize(size: number): AccessSize {
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) throw new RangeError(`access size ${size} is not 1, 2, 4 or 8`);
  return size;
}

/** Little-endian decode of a 1/2/4-byte number or an 8-byte bigint. */
export function decodeLE(b: Uint8Array, size: AccessSize): number | bigint {
  switch (size) {
    case 1: return b[0]!;
    case 2: return b[0]! | (b[1]! << 8);
    case 4: return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    case 8: return Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64LE(0);
  }
}

/** Little-endian encode, range-checked: a number for 1/2/4 bytes, a number or bigint for 8. */
export function encodeLE(b: Uint8Array, size: AccessSize, value: number | bigint): void {
  if (size === 8) {
    const v = typeof value === 'bigint' ? value : BigInt(value);
    if (v < 0n || v >= 1n << 64n) throw new RangeError(`value ${v} does not fit 8 bytes`);
    Buffer.from(b.buffer, b.byteOffset, 8).writeBigUInt64LE(v, 0);
    return;
  }
  const n = typeof value === 'bigint' ? Number(value) : value;
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** (size * 8)) throw new RangeError(`value ${String(value)} does not fit ${size} bytes`);
  for (let i = 0; i < size; i++) b[i] = Math.floor(n / 2 ** (8 * i)) & 0xff;
}
