/**
 * The bytes behind a fake device's regions, for pread/pwrite at `index << 40 | offset` the way vfio-pci
 * answers them (drivers/vfio/pci/vfio_pci_rdwr.c): a region without READ/WRITE is EINVAL, an access
 * starting at or beyond the region end is EINVAL, one that runs past it is cut short. Config space
 * (region 7) is the buffer the test supplies; BARs are zero-filled buffers created on first use.
 */
import { constants } from 'node:os';
import { VFIO_REGION_FLAGS } from '../../src/uapi/index.js';
import type { DeviceDescription } from '../../src/vfio/description.js';

const E = constants.errno;
const SHIFT = 40n;
/** Larger regions are served as zeros without a backing buffer (never allocate a GPU BAR in a test). */
const MAX_BACKED = 1n << 24n;

export class FakeRegions {
  readonly #device: DeviceDescription | undefined;
  readonly #config: Buffer;
  readonly #bytes = new Map<number, Buffer>();

  constructor(device: DeviceDescription | undefined, config: Buffer) {
    this.#device = device;
    this.#config = config;
  }

  /** The backing bytes of region `index` (BARs: created zeroed on first use), for tests to seed or inspect. */
  bytes(index: number): Buffer {
    if (index === 7) return this.#config;
    const region = this.#device?.regions.find((r) => r.index === index);
    if (!region) throw new RangeError(`fake device has no region ${index}`);
    let b = this.#bytes.get(index);
    if (!b) this.#bytes.set(index, (b = Buffer.alloc(Number(region.size < MAX_BACKED ? region.size : 0n))));
    return b;
  }

  read(buffer: Buffer, offset: bigint, fail: (errno: number) => never): number {
    const { backing, within, count } = this.#access(buffer, offset, VFIO_REGION_FLAGS.READ, fail);
    buffer.fill(0, 0, count);
    backing.copy(buffer, 0, within, Math.min(backing.length, within + count));
    return count;
  }

  write(buffer: Buffer, offset: bigint, fail: (errno: number) => never): number {
    const { backing, within, count } = this.#access(buffer, offset, VFIO_REGION_FLAGS.WRITE, fail);
    buffer.copy(backing, within, 0, Math.max(0, Math.min(count, backing.length - within)));
    return count;
  }

  #access(
    buffer: Buffer,
    offset: bigint,
    need: number,
    fail: (errno: number) => never,
  ): { backing: Buffer; within: number; count: number } {
    const index = Number(offset >> SHIFT);
    const region = this.#device?.regions.find((r) => r.index === index);
    if (!region || (region.flags & need) === 0) return fail(E.EINVAL);
    const within = offset & ((1n << SHIFT) - 1n);
    const size = index === 7 ? BigInt(this.#config.length) : region.size;
    if (within >= size) return fail(E.EINVAL);
    const count = Number(within + BigInt(buffer.length) > size ? size - within : BigInt(buffer.length));
    return { backing: this.bytes(index), within: Number(within), count };
  }
}
