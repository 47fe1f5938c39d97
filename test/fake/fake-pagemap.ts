/**
 * /proc/self/pagemap of the fake kernel: tests say where host pages sit physically (`place`) and whether the
 * caller may see PFNs (`hidePfns`: what a process without CAP_SYS_ADMIN reads). Unplaced pages read as
 * not present, like memory never touched.
 */
export const PAGEMAP_PATH = '/proc/self/pagemap';

const PRESENT = 1n << 63n;

export class FakePagemap {
  /** Without CAP_SYS_ADMIN the kernel zeroes the PFN field of present pages. */
  hidePfns = false;
  readonly #pages = new Map<bigint, bigint>();

  constructor(private readonly pageSize: bigint) {}

  /** Host pages `[hostAddress, hostAddress + size)` are resident at physical `physicalAddress` onwards. */
  place(hostAddress: bigint, size: bigint, physicalAddress: bigint): void {
    for (let offset = 0n; offset < size; offset += this.pageSize) {
      this.#pages.set((hostAddress + offset) / this.pageSize, (physicalAddress + offset) / this.pageSize);
    }
  }

  /** pread of the pagemap file: 8 bytes per virtual page, from `offset` = page number x 8. */
  read(buffer: Buffer, offset: bigint, fail: (errno: number) => never, einval: number): number {
    if (offset % 8n !== 0n || buffer.length % 8 !== 0) return fail(einval);
    for (let i = 0; i < buffer.length / 8; i++) {
      const pfn = this.#pages.get(offset / 8n + BigInt(i));
      const entry = pfn === undefined ? 0n : PRESENT | (this.hidePfns ? 0n : pfn);
      buffer.writeBigUInt64LE(entry, i * 8);
    }
    return buffer.length;
  }
}
