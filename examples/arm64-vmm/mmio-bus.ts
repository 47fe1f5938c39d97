/**
 * Routes the vCPU's MMIO exits to the device that owns the address; an address nobody owns reads as
 * zero and ignores writes (and is counted, so the report shows it).
 */

export interface MmioDevice {
  /** A read of `size` bytes at `offset` within the device's range; the value is zero-extended. */
  read(offset: bigint, size: number): bigint;
  write(offset: bigint, size: number, value: bigint): void;
}

interface Range {
  readonly base: bigint;
  readonly size: bigint;
  readonly name: string;
  readonly device: MmioDevice;
}

export class MmioBus {
  readonly #ranges: Range[] = [];
  /** Exits served, per device name (and `unclaimed`). */
  readonly counts = new Map<string, number>();

  add(name: string, base: bigint, size: bigint, device: MmioDevice): void {
    const overlapping = this.#ranges.find((r) => base < r.base + r.size && r.base < base + size);
    if (overlapping) throw new RangeError(`MMIO range ${name} overlaps ${overlapping.name}`);
    this.#ranges.push({ base, size, name, device });
  }

  /** Changes the base of a range (a guest reprogrammed a BAR). */
  move(name: string, base: bigint): void {
    const index = this.#ranges.findIndex((r) => r.name === name);
    if (index < 0) throw new RangeError(`no MMIO range ${name}`);
    this.#ranges[index] = { ...this.#ranges[index]!, base };
  }

  remove(name: string): void {
    const index = this.#ranges.findIndex((r) => r.name === name);
    if (index >= 0) this.#ranges.splice(index, 1);
  }

  read(address: bigint, size: number): bigint {
    const range = this.#find(address);
    return range ? range.device.read(address - range.base, size) : 0n;
  }

  write(address: bigint, size: number, value: bigint): void {
    const range = this.#find(address);
    if (range) range.device.write(address - range.base, size, value);
  }

  #find(address: bigint): Range | undefined {
    const range = this.#ranges.find((r) => address >= r.base && address < r.base + r.size);
    const name = range?.name ?? 'unclaimed';
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    return range;
  }
}
