/* The device description types: plain immutable data (documented on DeviceDescription). */

import type { ByteRange } from '../util/byte-range.js';

/** A `{offset, size}` range inside a region or BAR (the one shared range type, from src/util). */
export type { ByteRange };

/**
 * One entry of a region's VFIO capability chain (`VFIO_REGION_INFO_CAP_*`), decoded by
 * {@link parseRegionCapabilities}. `id` and `version` are the kernel's header fields; `kind` names what was decoded.
 */
export type RegionCapability =
  /** `VFIO_REGION_INFO_CAP_SPARSE_MMAP`: only `areas` of the region may be mmapped; the rest must be trapped. */
  | {
    /** Decoded kind. */ readonly kind: 'sparse-mmap';
    /** `VFIO_REGION_INFO_CAP_SPARSE_MMAP`. */ readonly id: 1;
    /** Capability version from its header. */ readonly version: number;
    /** The mmappable areas, in kernel order. */ readonly areas: readonly ByteRange[];
  }
  /** `VFIO_REGION_INFO_CAP_TYPE`: a device-specific region (type/subtype as the kernel defines them). */
  | {
    /** Decoded kind. */ readonly kind: 'type';
    /** `VFIO_REGION_INFO_CAP_TYPE`. */ readonly id: 2;
    /** Capability version from its header. */ readonly version: number;
    /** Region type (`VFIO_REGION_TYPE_*`). */ readonly type: number;
    /** Region subtype, meaningful per type. */ readonly subtype: number;
  }
  /** `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`: the MSI-X table's page may be mmapped (the kernel does not trap it). */
  | {
    /** Decoded kind. */ readonly kind: 'msix-mappable';
    /** `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`. */ readonly id: 3;
    /** Capability version from its header. */ readonly version: number;
  }
  /** A capability this library does not interpret; `data` is the body after the header, hex-encoded. */
  | {
    /** Always `'unknown'`. */ readonly kind: 'unknown';
    /** The capability id from its header. */ readonly id: number;
    /** Capability version from its header. */ readonly version: number;
    /** The body after the header, hex-encoded. */ readonly data: string;
  };

/** One VFIO region of the device (`VFIO_DEVICE_GET_REGION_INFO`), as plain data. */
export interface RegionDescription {
  /** VFIO region index: BAR0-5 are 0-5, ROM 6, CONFIG 7, VGA 8. Regions are keyed by this, never by position. */
  readonly index: number;
  /** VFIO_REGION_INFO_FLAG_* (READ 1, WRITE 2, MMAP 4, CAPS 8). */
  readonly flags: number;
  /** Region size in bytes (0: the region does not exist, e.g. an unused BAR). */
  readonly size: bigint;
  /** Offset of the region in the device fd (`index << 40` on vfio-pci). */
  readonly offset: bigint;
  /** The region's capability chain, in chain order (empty without `VFIO_REGION_INFO_FLAG_CAPS`). */
  readonly capabilities: readonly RegionCapability[];
}

/** One VFIO interrupt index of the device (`VFIO_DEVICE_GET_IRQ_INFO`). */
export interface IrqDescription {
  /** `VFIO_PCI_*_IRQ_INDEX`: INTx 0, MSI 1, MSI-X 2, ERR 3, REQ 4. */
  readonly index: number;
  /** `VFIO_IRQ_INFO_*` (EVENTFD 1, MASKABLE 2, AUTOMASKED 4, NORESIZE 8). */
  readonly flags: number;
  /** Number of vectors the index supports (0: not supported). */
  readonly count: number;
}

/** How a BAR register decodes (from config space). */
export interface BarRegister {
  /** BAR register number, 0-5. */
  readonly index: number;
  /** Memory or I/O space; `'upper-half'` is the high dword of the 64-bit BAR before it; `'unused'` decodes nothing. */
  readonly kind: 'memory' | 'io' | 'upper-half' | 'unused';
  /** A 64-bit memory BAR (it uses the next register as its upper half). */
  readonly is64Bit: boolean;
  /** The prefetchable bit of a memory BAR. */
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
  /** The vector table: 16 bytes per vector. */
  readonly table: MsixStructure;
  /** The pending-bit array: one bit per vector, in u64 words: ceil(vectors / 64) * 8 bytes. */
  readonly pba: MsixStructure;
}

/** Where an MSI-X structure (table or PBA) lives in the device's BARs. */
export interface MsixStructure {
  /** BAR indicator: the BAR (0-5) that holds it. */
  readonly bir: number;
  /** Offset inside that BAR. */
  readonly offset: bigint;
  /** Size in bytes. */
  readonly size: bigint;
}

/** The identity fields of the device's config space header, and its capability list. */
export interface PciConfigSummary {
  /** PCI vendor id (offset 0x00). */
  readonly vendorId: number;
  /** PCI device id (offset 0x02). */
  readonly deviceId: number;
  /** 24-bit class code: base class, subclass, programming interface (offset 0x09). */
  readonly classCode: number;
  /** Header type (offset 0x0e), with the multi-function bit. */
  readonly headerType: number;
  /** Standard capability list: id and config-space offset, in chain order. */
  readonly capabilities: readonly {
    /** Capability id (PCI_CAP_ID_*). */ readonly id: number;
    /** Its offset in config space. */ readonly offset: number;
  }[];
}

/**
 * Everything the planner needs to know about a VFIO PCI device, as plain immutable data. `describe()`
 * produces it from a live device; {@link descriptionFromJSON} replays a capture (fixtures, CLI profiles,
 * bug reports). u64 values are bigint here and `"0x..."` strings in JSON.
 *
 * @example
 * const description = device.describe();                    // live, from VfioDevice.open(...)
 * writeFileSync('nvme.json', JSON.stringify(descriptionToJSON(description)));
 * const replayed = descriptionFromJSON(JSON.parse(readFileSync('nvme.json', 'utf8')));
 */
export interface DeviceDescription {
  /** PCI address, e.g. `0000:00:01.0`. */
  readonly bdf: string;
  /** VFIO_DEVICE_FLAGS_*. */
  readonly flags: number;
  /** `num_regions` from VFIO_DEVICE_GET_INFO. */
  readonly numRegions: number;
  /** `num_irqs` from VFIO_DEVICE_GET_INFO. */
  readonly numIrqs: number;
  /** The regions that were queried, keyed by `index` (use {@link regionByIndex}, not array positions). */
  readonly regions: readonly RegionDescription[];
  /** The interrupt indexes that were queried. */
  readonly irqs: readonly IrqDescription[];
  /** Identity and capability list from config space, when it was readable. */
  readonly config?: PciConfigSummary;
  /** The six BAR registers as they decode. */
  readonly bars: readonly BarRegister[];
  /** The MSI-X capability, when the device has one. */
  readonly msix?: MsixDescription;
}

/** The region with VFIO index `index`, or undefined. Regions are keyed by index, never by array position. */
export function regionByIndex(description: DeviceDescription, index: number): RegionDescription | undefined {
  return description.regions.find((region) => region.index === index);
}
