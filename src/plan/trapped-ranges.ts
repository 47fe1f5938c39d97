/**
 * The trapped ranges of a guest BAR: everything the direct mappings do not cover. Each piece gets a
 * cause from the first label that explains it (MSI-X, an unmappable area...) and a kind from the BAR's
 * geometry (what backs the byte: the device, the MSI-X table or PBA as the guest sees them, or nothing).
 */
import { hex } from '../errors.js';
import type { TrapCause, TrapKind, TrappedRange } from './types.js';
import type { MsixGuestLayout, MsixInBar } from './msix-layout.js';
import { span, subtractSpans, type Span } from './ranges.js';
import { firstLabelRuns } from './label-runs.js';

/** Why the bytes of `span` are not mapped (first matching label wins). */
export interface TrapLabel {
  readonly span: Span;
  readonly cause: TrapCause;
  /** Why not mapped, in words; the action (forward, emulate, pad) is appended per kind. */
  readonly why: string;
}

/** What a guest BAR holds where: enough to say what backs any of its bytes. */
export interface BarGeometry {
  readonly regionSize: bigint;
  readonly guestSize: bigint;
  /** The MSI-X structures of this BAR; absent when it holds none. */
  readonly msix?: {
    /** Where the guest sees them (guest BAR offsets). */
    readonly guest: MsixGuestLayout;
    /** Where they are in the device region. */
    readonly device: MsixInBar;
    /** True when the guest sees them in the upper half of a doubled BAR. */
    readonly relocated: boolean;
  };
}

/** One run of bytes with the same backing, starting at the offset asked about. */
interface Backing {
  readonly kind: TrapKind;
  /** Region offset of the first byte (absent for padding). */
  readonly fileOffset?: bigint;
  /** End (exclusive) of the run in the guest BAR. */
  readonly end: bigint;
}

export function trappedRanges(geometry: BarGeometry, mapped: readonly Span[], labels: readonly TrapLabel[], fallback: Omit<TrapLabel, 'span'>): TrappedRange[] {
  const gaps = subtractSpans([span(0n, geometry.guestSize)], mapped);
  // One sweep over all gaps and labels (n log n): testing every label against every gap was quadratic.
  const runs = firstLabelRuns(gaps, labels.map((l) => l.span));
  const pieces = runs.map((run): TrapLabel => ({ ...(run.label >= 0 ? labels[run.label]! : fallback), span: run.span }));
  const ranges = pieces.flatMap((piece) => classify(piece, geometry));
  return mergeAdjacent(ranges.sort((a, b) => (a.barOffset < b.barOffset ? -1 : 1)));
}

/**
 * Splits a labelled piece of a guest BAR into trapped ranges of one kind each. Used for gaps between
 * mappings and for suspended mappings alike.
 */
export function classify(piece: TrapLabel, geometry: BarGeometry): TrappedRange[] {
  const out: TrappedRange[] = [];
  for (let at = piece.span.start; at < piece.span.end;) {
    const run = backingAt(at, geometry);
    const end = run.end < piece.span.end ? run.end : piece.span.end;
    out.push(trapped(at, end - at, run, piece, geometry));
    at = end;
  }
  return out;
}

function trapped(barOffset: bigint, size: bigint, run: Backing, label: TrapLabel, geometry: BarGeometry): TrappedRange {
  const padding = run.kind === 'padding';
  // Padding past the region is trapped because there is no device there, whatever else the label said;
  // the exceptions keep their cause so that `relativeOf` and the upper half stay recognisable.
  const keepsCause = label.cause === 'suspended' || label.cause === 'msix-relocated';
  const cause: TrapCause = padding && !keepsCause ? 'beyond-region' : label.cause;
  const why = padding && !keepsCause ? `beyond the device region (${hex(geometry.regionSize)})` : label.why;
  return {
    barOffset,
    size,
    kind: run.kind,
    ...(run.fileOffset !== undefined && { fileOffset: run.fileOffset }),
    cause,
    reason: `${why}: ${ACTION[run.kind]}`,
  };
}

const ACTION: Readonly<Record<TrapKind, string>> = {
  'device': 'forwarded to the device',
  'msix-table': 'MSI-X table, emulated',
  'msix-pba': 'MSI-X PBA, emulated',
  'padding': 'padding (reads return 0, writes are dropped)',
};

/**
 * What backs guest BAR offset `at`, and how far that backing runs. The guest's MSI-X table wins over its
 * PBA where a (malformed) device lets them overlap; outside them, the lower half of a relocated BAR and
 * all of an unrelocated one show the region at the same offsets, and bytes past the region are padding.
 */
function backingAt(at: bigint, geometry: BarGeometry): Backing {
  const { msix, regionSize, guestSize } = geometry;
  const half = msix?.relocated ? guestSize / 2n : guestSize;
  const table = msix?.guest.table && msix.device.table ? inStructure(at, msix.guest.table, msix.device.table.offset, 'msix-table') : undefined;
  if (table) return table;
  const pba = msix?.guest.pba && msix.device.pba ? inStructure(at, msix.guest.pba, msix.device.pba.offset, 'msix-pba') : undefined;
  if (pba) return { ...pba, end: minOf(pba.end, startAfter(at, msix?.guest.table)) };
  const msixStarts = minOf(startAfter(at, msix?.guest.table), startAfter(at, msix?.guest.pba));
  if (at >= half) return { kind: 'padding', end: minOf(guestSize, msixStarts) };
  if (at >= regionSize) return { kind: 'padding', end: minOf(half, msixStarts) };
  return { kind: 'device', fileOffset: at, end: minOf(regionSize, msixStarts) };
}

function inStructure(at: bigint, guest: { offset: bigint; size: bigint }, deviceOffset: bigint, kind: 'msix-table' | 'msix-pba'): Backing | undefined {
  if (at < guest.offset || at >= guest.offset + guest.size) return undefined;
  return { kind, fileOffset: deviceOffset + (at - guest.offset), end: guest.offset + guest.size };
}

/** Start of `r` when it lies after `at`, else "never" (no bound). */
function startAfter(at: bigint, r: { offset: bigint } | undefined): bigint {
  return r && r.offset > at ? r.offset : NEVER;
}

const NEVER = 1n << 128n;
const minOf = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/** Joins neighbours that say the same thing and continue each other's file offsets. */
export function mergeAdjacent(ranges: readonly TrappedRange[]): TrappedRange[] {
  const merged: TrappedRange[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && continues(last, r)) merged[merged.length - 1] = { ...last, size: last.size + r.size };
    else merged.push(r);
  }
  return merged;
}

function continues(a: TrappedRange, b: TrappedRange): boolean {
  if (a.kind !== b.kind || a.cause !== b.cause || a.reason !== b.reason || a.barOffset + a.size !== b.barOffset) return false;
  return a.fileOffset === undefined ? b.fileOffset === undefined : b.fileOffset === a.fileOffset + a.size;
}
