/* The MMIO-exit dispatcher of the guest view (documented on MmioDispatcher). */
import { hex } from '../errors.js';
import type { PlannedBar } from '../plan/types.js';
import type { RegionAccess } from '../vfio/region-access.js';
import type { GuestBarHost } from './bar-host.js';
import { GuestError } from './errors.js';
import { barPieces, type TrappedKind } from './plan-contract.js';

/** The MSI-X emulation the dispatcher forwards table and PBA accesses to (offsets from their starts). */
export interface MsixAccess {
  /** A guest read of the MSI-X table at `offset` from its start; fill `data`. */
  tableRead(offset: number, data: Uint8Array): void;
  /** A guest write of the MSI-X table at `offset` from its start. */
  tableWrite(offset: number, data: Uint8Array): void;
  /** A guest read of the PBA at `offset` from its start; fill `data`. */
  pbaRead(offset: number, data: Uint8Array): void;
}

const KIND = { device: 0, 'msix-table': 1, 'msix-pba': 2, padding: 3 } as const satisfies Record<TrappedKind, number>;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** One BAR compiled for dispatch. Offsets are numbers: guest BARs are far below 2^53 bytes. */
interface CompiledBar {
  readonly index: number;
  readonly base: bigint;
  readonly end: bigint;
  readonly starts: Float64Array;
  readonly ends: Float64Array;
  readonly kinds: Uint8Array;
  /** Region offset of each piece's first byte (device pieces), or the offset inside the table/PBA. */
  readonly offsets: Float64Array;
  /** Device pieces: gpa - delta is the device-fd offset of a byte (region offset included). */
  readonly deltas: bigint[];
}

/**
 * The one entry point for a VMM's MMIO exits on a passed-through device's BARs: each access is routed to
 * the MSI-X table emulation, the PBA, the device (pread/pwrite at the translated region offset:
 * relocation, hole pages and suspended mappings included) or padding (reads 0, writes dropped).
 *
 * A parked BAR (its range overlaps another BAR or slot, see `BarMapper.move`) has no slots: the dispatcher
 * serves its whole range like this, its mapped pieces forwarded to the device, except where it overlaps
 * a BAR that is not parked, which answers there.
 *
 * Hot path: per BAR, the plan is compiled into flat arrays (piece start/end, kind, region offset) when
 * the BAR is placed or moved; an access is a short scan over at most six BARs, a binary search and one
 * syscall for device bytes, with scratch buffers reused (no per-call allocation beyond one bigint).
 *
 * {@link PassthroughDevice} builds one; use it directly only with your own config space.
 */
export class MmioDispatcher {
  readonly #host: GuestBarHost;
  readonly #region: RegionAccess;
  readonly #msix: MsixAccess | undefined;
  readonly #bdf: string;
  readonly #indices: readonly number[];
  #bars: CompiledBar[] = [];
  readonly #decoding = new Set<number>();
  readonly #scratch: Buffer[] = Array.from({ length: 9 }, (_, n) => Buffer.alloc(n));

  /**
   * @param host where the BARs are placed now (BarMapper)
   * @param region device region access (pread/pwrite)
   * @param msix MSI-X emulation, when the device has MSI-X
   * @param indices the BAR indices this device exposes (the plan's BARs)
   */
  constructor(host: GuestBarHost, region: RegionAccess, msix: MsixAccess | undefined, indices: readonly number[], bdf = '') {
    this.#host = host;
    this.#region = region;
    this.#msix = msix;
    this.#bdf = bdf;
    this.#indices = [...indices];
    for (const i of indices) this.#decoding.add(i);
    this.refresh();
  }

  /**
   * Re-reads every BAR's placement (and parking) from the host. Call it after moving a BAR, or retrying
   * parked BARs, behind the device's back (PassthroughDevice does it for the changes it makes).
   */
  refresh(): void {
    const holders: CompiledBar[] = [];
    const parked: CompiledBar[] = [];
    for (const index of this.#indices) {
      const bar = this.#host.plannedBar(index);
      if (bar?.guestAddress === undefined) continue;
      const compiled = compileBar(bar, this.#bdf, this.#region.regionOffset(index) ?? bar.regionOffset);
      // Where BARs overlap, the one holding the range answers: parked BARs are scanned last.
      (this.#host.parking?.(index) ? parked : holders).push(compiled);
    }
    this.#bars = [...holders, ...parked];
  }

  /** A BAR that does not decode (COMMAND.MEM clear) claims no access. */
  setDecode(index: number, enabled: boolean): void {
    if (enabled) this.#decoding.add(index);
    else this.#decoding.delete(index);
  }

  /**
   * Handles one MMIO exit: `data.length` is the access size (1-8); reads fill `data` in place.
   * Returns false when no BAR of this device (decoding) holds `gpa`: the access is not ours.
   * Throws GuestError `BAD_ARGUMENT` for malformed input, and the device's errors (VfioError) for a
   * forwarded access that fails.
   * @example
   * if (exit.kind === 'mmio' && device.handleMmio(exit.address, run.mmioData, exit.isWrite)) continue;
   */
  handleMmio(gpa: bigint, data: Uint8Array, isWrite: boolean): boolean {
    if (typeof gpa !== 'bigint' || !(data instanceof Uint8Array) || data.length === 0 || data.length > 8 || typeof isWrite !== 'boolean') {
      throw new GuestError(
        `${this.#bdf}: MMIO access needs a bigint gpa, 1-8 data bytes and a boolean isWrite`,
        { code: 'BAD_ARGUMENT', bdf: this.#bdf },
      );
    }
    const bars = this.#bars;
    for (let b = 0; b < bars.length; b++) {
      const bar = bars[b]!;
      if (gpa < bar.base || gpa >= bar.end || !this.#decoding.has(bar.index)) continue;
      const offset = Number(gpa - bar.base);
      const p = findPiece(bar, offset);
      // The common case: one device piece holds the whole access. One bigint for the fd offset, one syscall.
      if (bar.kinds[p] === KIND.device && offset + data.length <= bar.ends[p]!) {
        this.#deviceAt(bar.index, gpa - bar.deltas[p]!, data, isWrite);
      }
      else this.#access(bar, offset, data, isWrite);
      return true;
    }
    return false;
  }

  #access(bar: CompiledBar, offset: number, data: Uint8Array, isWrite: boolean): void {
    const p = findPiece(bar, offset);
    if (offset + data.length <= bar.ends[p]!) {
      this.#piece(bar, p, offset, data, isWrite);
      return;
    }
    // Straddles pieces (or the BAR's end): split. Rare; guests access registers naturally aligned.
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      if (at >= bar.ends[bar.ends.length - 1]!) {
        if (!isWrite) data.fill(0, done);
        return;
      }
      const q = findPiece(bar, at);
      const take = Math.min(data.length - done, bar.ends[q]! - at);
      this.#piece(bar, q, at, data.subarray(done, done + take), isWrite);
      done += take;
    }
  }

  #piece(bar: CompiledBar, p: number, offset: number, data: Uint8Array, isWrite: boolean): void {
    const inPiece = bar.offsets[p]! + (offset - bar.starts[p]!);
    switch (bar.kinds[p]) {
      case KIND.device:
        this.#device(bar.index, inPiece, data, isWrite);
        return;
      case KIND['msix-table']:
        if (isWrite) this.#msix!.tableWrite(inPiece, data);
        else this.#msix!.tableRead(inPiece, data);
        return;
      case KIND['msix-pba']:
        if (!isWrite) this.#msix!.pbaRead(inPiece, data); // the PBA is read-only
        return;
      default:
        if (!isWrite) data.fill(0);
    }
  }

  #device(index: number, fileOffset: number, data: Uint8Array, isWrite: boolean): void {
    const scratch = data.length <= 8 ? this.#scratch[data.length]! : Buffer.alloc(data.length);
    if (isWrite) {
      scratch.set(data);
      this.#region.writeFrom(index, BigInt(fileOffset), scratch);
    } else {
      this.#region.readInto(index, BigInt(fileOffset), scratch);
      data.set(scratch);
    }
  }

  /** A device access already known to lie inside the region (checked when the BAR was compiled). */
  #deviceAt(index: number, fdOffset: bigint, data: Uint8Array, isWrite: boolean): void {
    const scratch = this.#scratch[data.length]!;
    if (isWrite) {
      scratch.set(data);
      this.#region.writeChecked(index, fdOffset, scratch);
    } else {
      this.#region.readChecked(index, fdOffset, scratch);
      data.set(scratch);
    }
  }
}

/** Index of the piece holding `offset` (pieces are sorted and contiguous from 0). */
function findPiece(bar: CompiledBar, offset: number): number {
  let lo = 0;
  let hi = bar.starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (bar.starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Flattens a placed BAR's pieces into arrays; an uncovered gap (a plan defect) is treated as padding. */
export function compileBar(bar: PlannedBar, bdf = '', regionOffset = bar.regionOffset): CompiledBar {
  if (bar.guestSize > MAX_SAFE) {
    throw new GuestError(
      `${bdf}: BAR${bar.index} of ${hex(bar.guestSize)} bytes is too large to dispatch`,
      { code: 'BAR_TOO_LARGE', bdf, bar: bar.index },
    );
  }
  const starts: number[] = [];
  const ends: number[] = [];
  const kinds: number[] = [];
  const offsets: number[] = [];
  let cursor = 0n;
  const push = (start: bigint, end: bigint, kind: number, offset: bigint): void => {
    starts.push(Number(start));
    ends.push(Number(end));
    kinds.push(kind);
    offsets.push(Number(offset));
  };
  // Device bytes stop at the region's end: the rest of an expanded sub-page mapping is padding when trapped.
  const pushDevice = (start: bigint, end: bigint, fileOffset: bigint): void => {
    const room = bar.regionSize > fileOffset ? bar.regionSize - fileOffset : 0n;
    const split = end - start > room ? start + room : end;
    if (split > start) push(start, split, KIND.device, fileOffset);
    if (end > split) push(split, end, KIND.padding, 0n);
  };
  for (const piece of barPieces(bar)) {
    if (piece.start > cursor) push(cursor, piece.start, KIND.padding, 0n);
    if (piece.backing === 'mapped') pushDevice(piece.start, piece.end, piece.mapping.fileOffset);
    else if (piece.range.kind === 'device') pushDevice(piece.start, piece.end, piece.range.fileOffset ?? piece.start);
    else push(piece.start, piece.end, KIND[piece.range.kind], offsetOfTrapped(bar, piece.range.kind, piece.start));
    cursor = piece.end;
  }
  if (cursor < bar.guestSize || starts.length === 0) push(cursor, bar.guestSize, KIND.padding, 0n);
  const base = bar.guestAddress!;
  // gpa - delta = regionOffset + fileOffset + (gpa - base - start): the fd offset of a device byte.
  const deltas = starts.map((start, p) => (kinds[p] === KIND.device ? base + BigInt(start) - regionOffset - BigInt(offsets[p]!) : 0n));
  return {
    index: bar.index, base, end: base + bar.guestSize, deltas,
    starts: Float64Array.from(starts), ends: Float64Array.from(ends), kinds: Uint8Array.from(kinds), offsets: Float64Array.from(offsets),
  };
}

/** MSI-X pieces: their first byte's offset in the table/PBA as the guest sees it. */
function offsetOfTrapped(bar: PlannedBar, kind: TrappedKind, start: bigint): bigint {
  if (kind === 'msix-table') return start - bar.msix!.table!.offset;
  if (kind === 'msix-pba') return start - bar.msix!.pba!.offset;
  return 0n;
}
