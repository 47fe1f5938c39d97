/* The guest's MSI-X table (documented on MsixTableShadow). */

/** Bytes per table entry (PCI spec). */
export const MSIX_ENTRY_SIZE = 16;
const VECTOR_CONTROL = 12;
const MASK_BIT = 1;

/** One vector's message as the guest programmed it. */
export interface MsixMessage {
  /** Message Address, low dword (x86: 0xfeeXXXXX with the destination APIC id). */
  readonly addressLo: number;
  /** Message Upper Address. */
  readonly addressHi: number;
  /** Message Data (x86: the vector and delivery mode). */
  readonly data: number;
}

/**
 * The guest's MSI-X table as the library keeps it (the shadow table): per vector the message address
 * (lo/hi), data and vector control (bit 0 = masked), plus the function mask and enable bits of the
 * emulated Message Control, and the pending bits the library records for masked vectors. Pure state:
 * msix-interrupts.ts turns its changes into SET_IRQS, routes and irqfds.
 */
export class MsixTableShadow {
  /** Table size: the number of vectors. */
  readonly vectors: number;
  readonly #table: Buffer;
  readonly #pending: Uint8Array;
  readonly #before = Buffer.alloc(2 * MSIX_ENTRY_SIZE);
  /** Message Control bit 15. */
  enabled = false;
  /** Message Control bit 14: masks every vector. */
  functionMasked = false;

  constructor(vectors: number) {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > 2048) throw new RangeError(`MSI-X vector count ${vectors} is not 1-2048`);
    this.vectors = vectors;
    this.#table = Buffer.alloc(vectors * MSIX_ENTRY_SIZE);
    this.#pending = new Uint8Array(vectors);
    // After reset every vector is masked (PCI spec: vector control mask bit resets to 1).
    for (let v = 0; v < vectors; v++) this.#table[v * MSIX_ENTRY_SIZE + VECTOR_CONTROL] = MASK_BIT;
  }

  /** Size of the table in bytes. */
  get size(): number {
    return this.#table.length;
  }

  /** Reads `data.length` bytes at `offset` of the table; bytes beyond the table read 0. */
  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = offset + i < this.#table.length ? this.#table[offset + i]! : 0;
  }

  /**
   * Writes bytes at `offset` (beyond the table: dropped). Calls `changed(vector)` once per vector whose
   * message or mask changed, after the whole write is applied.
   */
  write(offset: number, data: Uint8Array, changed: (vector: number) => void): void {
    const first = Math.floor(offset / MSIX_ENTRY_SIZE);
    const last = Math.min(Math.floor((offset + data.length - 1) / MSIX_ENTRY_SIZE), this.vectors - 1);
    if (first > last) return;
    // Keep the touched entries to see which changed; a CPU access touches at most two (no allocation).
    const span = (last - first + 1) * MSIX_ENTRY_SIZE;
    const before = span <= this.#before.length ? this.#before : Buffer.alloc(span);
    for (let i = 0; i < span; i++) before[i] = this.#table[first * MSIX_ENTRY_SIZE + i]!;
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      if (at >= this.#table.length) break;
      const field = at % MSIX_ENTRY_SIZE;
      // Vector control: only the mask bit is writable; the other 31 bits are reserved (read 0).
      this.#table[at] = field === VECTOR_CONTROL ? data[i]! & MASK_BIT : field > VECTOR_CONTROL ? 0 : data[i]!;
    }
    for (let v = first; v <= last; v++) {
      const base = v * MSIX_ENTRY_SIZE;
      const was = (v - first) * MSIX_ENTRY_SIZE;
      for (let i = 0; i < MSIX_ENTRY_SIZE; i++) {
        if (this.#table[base + i] !== before[was + i]) {
          changed(v);
          break;
        }
      }
    }
  }

  /** The message the guest programmed for `vector`. Throws RangeError for a vector outside the table. */
  message(vector: number): MsixMessage {
    const at = this.#checkVector(vector) * MSIX_ENTRY_SIZE;
    return { addressLo: this.#table.readUInt32LE(at), addressHi: this.#table.readUInt32LE(at + 4), data: this.#table.readUInt32LE(at + 8) };
  }

  /** The vector's own mask bit. */
  vectorMasked(vector: number): boolean {
    return (this.#table[this.#checkVector(vector) * MSIX_ENTRY_SIZE + VECTOR_CONTROL]! & MASK_BIT) !== 0;
  }

  /** Masked by its own bit or by the function mask: the interrupt must not reach the guest. */
  masked(vector: number): boolean {
    return this.functionMasked || this.vectorMasked(vector);
  }

  /** True when the vector may deliver: MSI-X enabled and not masked. */
  deliverable(vector: number): boolean {
    return this.enabled && !this.masked(vector);
  }

  /** Whether the library holds a pending interrupt for masked `vector` (shown in the guest's PBA). */
  pending(vector: number): boolean {
    return this.#pending[this.#checkVector(vector)] === 1;
  }

  /** Records or clears a pending interrupt for `vector`. */
  setPending(vector: number, pending: boolean): void {
    this.#pending[this.#checkVector(vector)] = pending ? 1 : 0;
  }

  /** Highest vector the guest has unmasked, or -1. */
  highestUnmasked(): number {
    for (let v = this.vectors - 1; v >= 0; v--) if (!this.vectorMasked(v)) return v;
    return -1;
  }

  /** Back to reset state: every vector masked, nothing pending, disabled. */
  reset(): void {
    this.#table.fill(0);
    this.#pending.fill(0);
    for (let v = 0; v < this.vectors; v++) this.#table[v * MSIX_ENTRY_SIZE + VECTOR_CONTROL] = MASK_BIT;
    this.enabled = false;
    this.functionMasked = false;
  }

  #checkVector(vector: number): number {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.vectors) {
      throw new RangeError(`MSI-X vector ${vector} is not 0-${this.vectors - 1}`);
    }
    return vector;
  }
}
