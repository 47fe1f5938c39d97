/**
 * `DeviceDescription`: everything the planner needs to know about a VFIO PCI device, as plain
 * immutable data. `describe()` produces it from a live device; `descriptionFromJSON` replays a capture
 * (fixtures, CLI profiles, bug reports). u64 values are bigint here and `"0x..."` strings in JSON.
 */

import type { ByteRange } from '../util/byte-range.js';

/** A `{offset, size}` range inside a region or BAR (the one shared range type, from src/util). */
export type { ByteRange };

export type RegionCapability =
  | { readonly kind: 'sparse-mmap'; readonly id: 1; readonly version: number; readonly areas: readonly ByteRange[] }
  | { readonly kind: 'type'; readonly id: 2; readonly version: number; readonly type: number; readonly subtype: number }
  | { readonly kind: 'msix-mappable'; readonly id: 3; readonly version: number }
  /** A capability this library does not interpret; `data` is the body after the header, hex-encoded. */
  | { readonly kind: 'unknown'; readonly id: number; readonly version: number; readonly data: string };

export interface RegionDescription {
  /** VFIO region index: BAR0-5 are 0-5, ROM 6, CONFIG 7, VGA 8. Regions are keyed by this, never by position. */
  readonly index: number;
  /** VFIO_REGION_INFO_FLAG_* (READ 1, WRITE 2, MMAP 4, CAPS 8). */
  readonly flags: number;
  readonly size: bigint;
  /** Offset of the region in the device fd (`index << 40` on vfio-pci). */
  readonly offset: bigint;
  readonly capabilities: readonly RegionCapability[];
}

export interface IrqDescription {
  readonly index: number;
  readonly flags: number;
  readonly count: number;
}

/** How a BAR register decodes (from config space). */
export interface BarRegister {
  readonly index: number;
  readonly kind: 'memory' | 'io' | 'upper-half' | 'unused';
  readonly is64Bit: boolean;
  readonly prefetchable: boolean;
  /** Address currently programmed in the host BAR register(s). */
  readonly address: bigint;
}

/** MSI-X capability as read from config space. Table and PBA may sit in different BARs. */
export interface MsixDescription {
  /** Offset of the MSI-X capability in config space. */
  readonly capOffset: number;
  /** Number of vectors (Table Size + 1). */
  readonly vectors: number;
  /** 16 bytes per vector. */
  readonly table: { readonly bir: number; readonly offset: bigint; readonly size: bigint };
  /** One bit per vector, in u64 words: ceil(vectors / 64) * 8 bytes. */
  readonly pba: { readonly bir: number; readonly offset: bigint; readonly size: bigint };
}

export interface PciConfigSummary {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly headerType: number;
  /** Standard capability list: id and config-space offset, in chain order. */
  readonly capabilities: readonly { readonly id: number; readonly offset: number }[];
}

export interface DeviceDescription {
  /** PCI address, e.g. `0000:00:01.0`. */
  readonly bdf: string;
  /** VFIO_DEVICE_FLAGS_*. */
  readonly flags: number;
  readonly numRegions: number;
  readonly numIrqs: number;
  readonly regions: readonly RegionDescription[];
  readonly irqs: readonly IrqDescription[];
  readonly config?: PciConfigSummary;
  readonly bars: readonly BarRegister[];
  readonly msix?: MsixDescription;
}

/** The region with VFIO index `index`, or undefined. Regions are keyed by index, never by array position. */
export function regionByIndex(description: DeviceDescription, index: number): RegionDescription | undefined {
  return description.regions.find((region) => region.index === index);
}
