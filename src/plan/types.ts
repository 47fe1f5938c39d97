/**
 * `MappingPlan`: what the mapper must do for each BAR, and why. Plain data; `planToJSON` writes u64 as
 * `"0x..."` strings. Offsets are relative to the start of the BAR as the guest sees it (`barOffset`) or
 * to the start of the VFIO region in the device fd (`fileOffset`).
 */

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
  readonly prot: Protection;
  /** Why this mapping exists and has this size, e.g. `expanded 0x4000 -> 0x10000: sub-page BAR, page-aligned`. */
  readonly reason: string;
}

/** A range of the guest BAR that the VMM must trap (emulate) instead of mapping. */
export interface TrappedRange {
  readonly barOffset: bigint;
  readonly size: bigint;
  readonly reason: string;
}

/** Where the guest sees the MSI-X structures that live in this BAR. */
export interface PlannedMsix {
  /** Present when the MSI-X table lives in this BAR. Offsets are in the guest BAR. */
  readonly table?: { readonly offset: bigint; readonly size: bigint };
  /** Present when the PBA lives in this BAR. */
  readonly pba?: { readonly offset: bigint; readonly size: bigint };
  /** True when the guest offsets differ from the device's (moved into a doubled BAR's upper half). */
  readonly relocated: boolean;
  readonly reason: string;
}

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
  readonly is64Bit: boolean;
  readonly prefetchable: boolean;
  readonly msix?: PlannedMsix;
  readonly mappings: readonly DirectMapping[];
  readonly trapped: readonly TrappedRange[];
  /**
   * Direct mappings withheld because the guest address is not page-aligned (KVM would refuse them);
   * their ranges are trapped meanwhile. `replan` to an aligned address restores them.
   */
  readonly suspended?: readonly DirectMapping[];
  /** BAR-level decisions, in order (also logged and shown by the CLI). */
  readonly reasons: readonly string[];
}

export type MsixStrategy = 'relocate' | 'hole';

export interface PlanOptions {
  /** Host page size in bytes (a power of two, >= 4096). */
  readonly pageSize: number | bigint;
  /** Guest physical base per BAR index. Without it the plan is relative (no `gpa`). */
  readonly barAddresses?: ReadonlyMap<number, bigint> | Readonly<Record<number, bigint>>;
  /** How to keep the MSI-X table and PBA trapped. Default `'relocate'`. */
  readonly msix?: MsixStrategy;
}

export interface MappingPlan {
  readonly pageSize: bigint;
  readonly msixStrategy: MsixStrategy;
  readonly bars: readonly PlannedBar[];
  /** Warning-level decisions (a BAR or area left trapped that a user might expect to be mapped). */
  readonly warnings: readonly string[];
  /** Regions 0-5 that produce no planned BAR (absent, size 0, I/O, upper half of a 64-bit BAR), and why. */
  readonly skipped: readonly { readonly index: number; readonly reason: string }[];
}
