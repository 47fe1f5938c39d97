/**
 * Memory-slot ids: released ids are reused first (a stack), then never-used ids in order. Both O(1),
 * so a VMM that moves BARs all day never walks the slot table.
 */
export class SlotAllocator {
  readonly #first: number;
  readonly #limit: number;
  readonly #released: number[] = [];
  #nextUnused = 0;
  #inUse = 0;

  /**
   * @param limit number of usable ids (KVM_CAP_NR_MEMSLOTS, or the share of them a VMM gives us).
   * @param first the lowest id handed out (a VMM keeps ids below it for RAM and other slots).
   */
  constructor(limit: number, first = 0) {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`slot limit ${limit} is not a non-negative integer`);
    if (!Number.isInteger(first) || first < 0) throw new RangeError(`first slot id ${first} is not a non-negative integer`);
    this.#limit = limit;
    this.#first = first;
  }

  get limit(): number {
    return this.#limit;
  }

  get inUse(): number {
    return this.#inUse;
  }

  /** An id, or undefined when all `limit` ids are taken. */
  allocate(): number | undefined {
    let id = this.#released.pop();
    if (id === undefined) {
      if (this.#nextUnused >= this.#limit) return undefined;
      id = this.#first + this.#nextUnused++;
    }
    this.#inUse++;
    return id;
  }

  /** Returns an id obtained from `allocate`. */
  release(id: number): void {
    if (!Number.isInteger(id) || id < this.#first || id >= this.#first + this.#nextUnused) {
      throw new RangeError(`slot id ${id} was never allocated`);
    }
    this.#released.push(id);
    this.#inUse--;
  }
}
