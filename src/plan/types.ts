/* The plan's types: plain data (documented on MappingPlan). */
import type { ByteRange } from '../util/byte-range.js';

/** Access a direct mapping allows: `'read'` for a read-only region (writes exit as MMIO), else `'read-write'`. */
export type Protection = 'read' | 'read-write';

/** One direct mapping: mmap `size` bytes of the region at `fileOffset`, register them at `barOffset`. */
export interface DirectMapping {
  /** Offset inside the VFIO region (add the region's fd offset to mmap). */
  readonly fileOffset: bigint;
  /** Offset inside the guest-visible BAR. */
  readonly barOffset: bigint;
  /** mmap length and KVM slot size: a host-page multiple, at most PAGE_ALIGN(region size) - fileOffset. */
  readonly size: bigint;
  /** Guest physical address (BAR base + barOffset), when the BAR's guest address is known. */
  readonly gpa?: bigint;
  /** Access the mmap and the KVM slot allow (`'read'`: a read-only slot, writes exit as MMIO). */
  readonly prot: Protection;
  /** Why this mapping exists and has this size, e.g. `expanded 0x4000 -> 0x10000: sub-page BAR, page-aligned`. */
  readonly reason: string;
}

/**
 * What backs a trapped byte, i.e. what a VMM must do with an access to it:
 * - `'device'`: forward the access to the device, at region offset `fileOffset + (offset - barOffset)`;
 * - `'msix-table'`: emulate the MSI-X table (the guest's view; `fileOffset` names the device's own entry);
 * - `'msix-pba'`: emulate the Pending Bit Array (the device's own PBA is at `fileOffset`);
 * - `'padding'`: no device behind it (beyond the region): reads return zeros, writes are dropped.
 *
 * Where the MSI-X table and PBA are relocated, the device's own table bytes in the lower half are plain
 * `'device'` bytes (the guest's table is in the upper half); vfio-pci reads them as 0xff and drops writes.
 * If a (malformed) device's table and PBA overlap, the overlapping bytes are `'msix-table'`.
 */
export type TrapKind = 'device' | 'msix-table' | 'msix-pba' | 'padding';

/**
 * Why a range is trapped instead of directly mapped (machine-readable; `TrappedRange.reason` is the prose):
 * - `'no-mmap'`: the region has no MMAP flag;
 * - `'outside-sparse-areas'`: not inside any SPARSE_MMAP area;
 * - `'msix-not-mmappable'`: an MSI-X page the kernel may refuse to mmap (no MSIX_MAPPABLE capability);
 * - `'msix-page'`: an MSI-X table/PBA page kept in place (`hole` strategy, or nothing else to map there);
 * - `'msix-relocated'`: the upper half of a BAR doubled to hold the relocated MSI-X table/PBA;
 * - `'sub-page-unmappable'`: a mappable area smaller than a page that cannot be grown to one;
 * - `'unaligned-edge'`: the non-page-aligned head or tail of a mappable area;
 * - `'beyond-region'`: guest BAR bytes past the end of the device region (the guest BAR is a power of two);
 * - `'suspended'`: a direct mapping withheld because the BAR's guest address is not page-aligned.
 */
export type TrapCause =
  | 'no-mmap'
  | 'outside-sparse-areas'
  | 'msix-not-mmappable'
  | 'msix-page'
  | 'msix-relocated'
  | 'sub-page-unmappable'
  | 'unaligned-edge'
  | 'beyond-region'
  | 'suspended';

/**
 * A range of the guest BAR that the VMM must trap (emulate) instead of mapping. All bytes of one range
 * have the same `kind` and `cause`, and for `'device'`/`'msix-*'` ranges consecutive bytes map to
 * consecutive region offsets.
 */
export interface TrappedRange {
  /** Offset in the guest BAR. */
  readonly barOffset: bigint;
  /** Length in bytes. */
  readonly size: bigint;
  /** What backs these bytes, i.e. how to serve an access (see {@link TrapKind}). */
  readonly kind: TrapKind;
  /**
   * `'device'`: VFIO-region offset of the byte at `barOffset` (forward an access at `off` to
   * `fileOffset + (off - barOffset)`; always `fileOffset + size <= regionSize`).
   * `'msix-table'` / `'msix-pba'`: region offset of the device's own table/PBA byte that corresponds to
   * `barOffset` (equal to `barOffset` unless relocated). Absent for `'padding'`.
   */
  readonly fileOffset?: bigint;
  /** Why the range is trapped (see {@link TrapCause}). */
  readonly cause: TrapCause;
  /** Human text, never parsed by code. */
  readonly reason: string;
}

/** Where the guest sees the MSI-X structures that live in this BAR. */
export interface PlannedMsix {
  /** Present when the MSI-X table lives in this BAR. Offsets are in the guest BAR. */
  readonly table?: ByteRange;
  /** Present when the PBA lives in this BAR. */
  readonly pba?: ByteRange;
  /** True when the guest offsets differ from the device's (moved into a doubled BAR's upper half). */
  readonly relocated: boolean;
  /** Human text explaining the placement, never parsed by code. */
  readonly reason: string;
}

/**
 * The plan for one memory BAR: how big the guest sees it, which parts are mapped directly (`mappings`) and
 * which are trapped (`trapped`), and why. `mappings` and `trapped` tile `[0, guestSize)` exactly.
 */
export interface PlannedBar {
  /** BAR / VFIO region index (0-5). */
  readonly index: number;
  /** Offset of the region in the device fd (`index << 40` on vfio-pci). */
  readonly regionOffset: bigint;
  /** Size VFIO reports for the region. */
  readonly regionSize: bigint;
  /** Size the guest sees (power of two; at least one host page when anything is mapped directly). */
  readonly guestSize: bigint;
  /** Guest physical base of the BAR, when known. */
  readonly guestAddress?: bigint;
  /** The BAR's config-space size mask as the guest must see it: ~(guestSize - 1), width of the BAR. */
  readonly sizeMask: bigint;
  /** A 64-bit BAR (two config-space registers). */
  readonly is64Bit: boolean;
  /** The prefetchable bit the guest sees, copied from the device. */
  readonly prefetchable: boolean;
  /** Where the guest sees the MSI-X table and PBA of this BAR, when it holds them. */
  readonly msix?: PlannedMsix;
  /** Sorted by `barOffset`, non-overlapping. */
  readonly mappings: readonly DirectMapping[];
  /** Sorted by `barOffset`; together with `mappings` they tile [0, guestSize) exactly. */
  readonly trapped: readonly TrappedRange[];
  /**
   * Direct mappings withheld because the guest address is not page-aligned (KVM would refuse them);
   * their ranges are trapped meanwhile. `replan` to an aligned address restores them.
   */
  readonly suspended?: readonly DirectMapping[];
  /** BAR-level decisions, in order (also logged and shown by the CLI). */
  readonly reasons: readonly BarNote[];
}

/**
 * What a BAR-level decision was about:
 * - `'no-mmap'` / `'sparse-mmap'` / `'whole-region-mmappable'`: which bytes VFIO lets us mmap;
 * - `'msix-not-mmappable'`: MSI-X pages kept out of mmap (no MSIX_MAPPABLE capability);
 * - `'msix-in-place'` / `'msix-hole'` / `'msix-relocated'`: where the MSI-X structures appear to the guest;
 * - `'msix-relocation-refused'`: relocating would make a 32-bit BAR too large, the pages are cut out instead;
 * - `'guest-size'`: the guest BAR size differs from the region size;
 * - `'unaligned-guest-address'` / `'suspended'`: placement notes, added by the guest address (a move replaces them).
 */
export type BarNoteCode =
  | 'no-mmap'
  | 'sparse-mmap'
  | 'whole-region-mmappable'
  | 'msix-not-mmappable'
  | 'msix-in-place'
  | 'msix-hole'
  | 'msix-relocated'
  | 'msix-relocation-refused'
  | 'guest-size'
  | 'unaligned-guest-address'
  | 'suspended';

/** One BAR-level decision: a code for programs, a message for people. */
export interface BarNote {
  /** What the decision was about, for programs. */
  readonly code: BarNoteCode;
  /** The decision in words, for people; never parsed. */
  readonly message: string;
}

/**
 * What a warning is about:
 * - `'no-mmap'`: the region has no MMAP flag, every access is trapped;
 * - `'msix-relocation-refused'`: see `BarNoteCode`;
 * - `'sub-page-unmappable'`: a mappable area smaller than a page could not be mapped;
 * - `'no-direct-mapping'`: the region is mmappable but nothing could be mapped;
 * - `'unaligned-guest-address'`: the guest address is not aligned to the BAR size;
 * - `'suspended'`: the guest address is not page-aligned, direct mappings are suspended.
 */
export type PlanWarningCode =
  | 'no-mmap'
  | 'msix-relocation-refused'
  | 'sub-page-unmappable'
  | 'no-direct-mapping'
  | 'unaligned-guest-address'
  | 'suspended';

/** A warning-level decision about BAR `bar` (something a user might expect to be mapped is trapped). */
export interface PlanWarning {
  /** The BAR index the warning is about. */
  readonly bar: number;
  /** What the warning is about, for programs. */
  readonly code: PlanWarningCode;
  /** The warning in words, for people; never parsed. */
  readonly message: string;
}

/** Why a region 0-5 produced no planned BAR. */
export type SkipCode = 'upper-half' | 'io-bar' | 'no-region' | 'empty-region';

/** A region 0-5 that produced no planned BAR. */
export interface SkippedBar {
  /** The region (BAR) index, 0-5. */
  readonly index: number;
  /** Why no BAR was planned, for programs. */
  readonly code: SkipCode;
  /** The same in words, for people; never parsed. */
  readonly reason: string;
}

/**
 * How the planner keeps the MSI-X table and PBA trapped when their pages would cut a direct mapping:
 * `'relocate'` doubles the guest BAR and moves them into a trapped upper half (the real BAR stays mapped);
 * `'hole'` (QEMU's way) cuts their pages out of the mapping and traps them in place.
 */
export type MsixStrategy = 'relocate' | 'hole';

/** Options of {@link planBarMappings}. */
export interface PlanOptions {
  /** Host page size in bytes (a power of two, >= 4096). */
  readonly pageSize: number | bigint;
  /** Guest physical base per BAR index. Without it the plan is relative (no `gpa`). */
  readonly barAddresses?: ReadonlyMap<number, bigint> | Readonly<Record<number, bigint>>;
  /** How to keep the MSI-X table and PBA trapped. Default `'relocate'`. */
  readonly msix?: MsixStrategy;
}

/**
 * What the mapper must do for each BAR, and why: the output of {@link planBarMappings}. Plain data;
 * {@link planToJSON} writes u64 as `"0x..."` strings. Offsets are relative to the start of the BAR as the
 * guest sees it (`barOffset`) or to the start of the VFIO region in the device fd (`fileOffset`).
 */
export interface MappingPlan {
  /** The host page size the plan was made for, in bytes. */
  readonly pageSize: bigint;
  /** The MSI-X strategy the plan was made with. */
  readonly msixStrategy: MsixStrategy;
  /** One entry per planned memory BAR, in index order. */
  readonly bars: readonly PlannedBar[];
  /** Warning-level decisions (a BAR or area left trapped that a user might expect to be mapped). */
  readonly warnings: readonly PlanWarning[];
  /** Regions 0-5 that produce no planned BAR (absent, size 0, I/O, upper half of a 64-bit BAR), and why. */
  readonly skipped: readonly SkippedBar[];
}

/**
 * What backs one byte of a guest BAR: a direct mapping (the access never reaches the VMM, unless the
 * mapping is suspended in a mapper) or a trapped range (whose `kind` says how to serve it).
 * `barOffset` is the byte's offset in the guest BAR.
 */
export type BarLocation = {
  /** The BAR holding the byte. */ readonly bar: PlannedBar;
  /** The byte's offset in the guest BAR. */ readonly barOffset: bigint;
} & (
  | {
    /** A direct mapping backs the byte. */ readonly backing: 'mapped';
    /** The mapping. */ readonly mapping: DirectMapping;
  }
  | {
    /** A trapped range backs the byte: serve the access by `range.kind`. */ readonly backing: 'trapped';
    /** The range. */ readonly range: TrappedRange;
  }
);
