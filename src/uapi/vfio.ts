/**
 * VFIO ABI (include/uapi/linux/vfio.h): ioctl numbers, flags, capability ids and struct codecs.
 * Every u64 is a bigint; every encoder range-checks before writing. Both supported targets
 * (x86-64, aarch64) are little-endian with natural alignment, so one layout serves both.
 */
import { io } from './ioctl.js';
import { checkU32 } from './u64.js';
import { decodeStruct, defineStruct, encodeStruct, need, writeStruct } from './layout.js';
import type { StructLayout } from './layout.js';

export const VFIO_TYPE = 0x3b; // ';'
export const VFIO_BASE = 100;
export const VFIO_API_VERSION = 0;

const vfio = (n: number): number => io(VFIO_TYPE, VFIO_BASE + n);

/** ioctl request numbers, keyed by their kernel names (used in error messages too). */
export const VFIO_IOCTL = {
  VFIO_GET_API_VERSION: vfio(0),
  VFIO_CHECK_EXTENSION: vfio(1),
  VFIO_SET_IOMMU: vfio(2),
  VFIO_GROUP_GET_STATUS: vfio(3),
  VFIO_GROUP_SET_CONTAINER: vfio(4),
  VFIO_GROUP_UNSET_CONTAINER: vfio(5),
  VFIO_GROUP_GET_DEVICE_FD: vfio(6),
  VFIO_DEVICE_GET_INFO: vfio(7),
  VFIO_DEVICE_GET_REGION_INFO: vfio(8),
  VFIO_DEVICE_GET_IRQ_INFO: vfio(9),
  VFIO_DEVICE_SET_IRQS: vfio(10),
  VFIO_DEVICE_RESET: vfio(11),
  VFIO_IOMMU_GET_INFO: vfio(12),
  VFIO_IOMMU_MAP_DMA: vfio(13),
  VFIO_IOMMU_UNMAP_DMA: vfio(14),
  VFIO_DEVICE_FEATURE: vfio(17),
  VFIO_DEVICE_BIND_IOMMUFD: vfio(18),
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: vfio(19),
  VFIO_DEVICE_DETACH_IOMMUFD_PT: vfio(20),
} as const;

/** VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments (passed by value). */
export const VFIO_EXTENSION = {
  TYPE1_IOMMU: 1,
  SPAPR_TCE_IOMMU: 2,
  TYPE1v2_IOMMU: 3,
  DMA_CC_IOMMU: 4,
  EEH: 5,
  TYPE1_NESTING_IOMMU: 6,
  SPAPR_TCE_v2_IOMMU: 7,
  NOIOMMU_IOMMU: 8,
} as const;

export const VFIO_GROUP_FLAGS = { VIABLE: 1, CONTAINER_SET: 2 } as const;
export const VFIO_DEVICE_FLAGS = {
  RESET: 1 << 0, PCI: 1 << 1, PLATFORM: 1 << 2, AMBA: 1 << 3, CCW: 1 << 4, AP: 1 << 5, FSL_MC: 1 << 6, CAPS: 1 << 7, CDX: 1 << 8,
} as const;
/** `vfio_region_info.flags` (VFIO_REGION_INFO_FLAG_*): what a region allows. */
export const VFIO_REGION_FLAGS = {
  /** The region can be read (pread). */
  READ: 1,
  /** The region can be written (pwrite). */
  WRITE: 2,
  /** The region can be mmapped: never mmap one without it. */
  MMAP: 4,
  /** The reply carries a capability chain (sparse areas, MSIX_MAPPABLE, type). */
  CAPS: 8,
} as const;
export const VFIO_IRQ_FLAGS = { EVENTFD: 1, MASKABLE: 2, AUTOMASKED: 4, NORESIZE: 8 } as const;
export const VFIO_DMA_MAP_FLAGS = { READ: 1, WRITE: 2 } as const;

/** vfio-pci region indices. */
export const VFIO_PCI_REGION = { BAR0: 0, BAR1: 1, BAR2: 2, BAR3: 3, BAR4: 4, BAR5: 5, ROM: 6, CONFIG: 7, VGA: 8 } as const;
export const VFIO_PCI_NUM_REGIONS = 9;
export const VFIO_PCI_IRQ = { INTX: 0, MSI: 1, MSIX: 2, ERR: 3, REQ: 4 } as const;

/** vfio-pci places region N at file offset N << 40 in the device fd. */
export const VFIO_PCI_OFFSET_SHIFT = 40n;
export function vfioPciRegionOffset(index: number): bigint {
  return BigInt(index) << VFIO_PCI_OFFSET_SHIFT;
}

/** Region capability ids (struct vfio_info_cap_header.id). */
export const VFIO_REGION_CAP = { SPARSE_MMAP: 1, TYPE: 2, MSIX_MAPPABLE: 3, NVLINK2_SSATGT: 4, NVLINK2_LNKSPD: 5 } as const;

// ---- layouts (checked against the headers by test/uapi/abi.test.ts) ---------------------------

export const VFIO_GROUP_STATUS = defineStruct({
  name: 'vfio_group_status', size: 8, headers: 'common',
  fields: { argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' } },
});
/** 20 bytes in the 6.1 headers; 24 since Linux 6.6 (trailing pad); replies may be larger still. */
export const VFIO_DEVICE_INFO = defineStruct({
  name: 'vfio_device_info', size: 20, headers: 'common',
  fields: {
    argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, num_regions: { offset: 8, type: 'u32' },
    num_irqs: { offset: 12, type: 'u32' }, cap_offset: { offset: 16, type: 'u32' },
  },
});
export const VFIO_REGION_INFO = defineStruct({
  name: 'vfio_region_info', size: 32, headers: 'common',
  fields: {
    argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, index: { offset: 8, type: 'u32' },
    cap_offset: { offset: 12, type: 'u32' }, size: { offset: 16, type: 'u64' }, offset: { offset: 24, type: 'u64' },
  },
});
export const VFIO_INFO_CAP_HEADER = defineStruct({
  name: 'vfio_info_cap_header', size: 8, headers: 'common',
  fields: { id: { offset: 0, type: 'u16' }, version: { offset: 2, type: 'u16' }, next: { offset: 4, type: 'u32' } },
});
/** The capability header (a nested struct at offset 0) is read with VFIO_INFO_CAP_HEADER; the areas follow. */
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = defineStruct({
  name: 'vfio_region_info_cap_sparse_mmap', size: 16, headers: 'common', flexible: 'areas',
  fields: { nr_areas: { offset: 8, type: 'u32' }, reserved: { offset: 12, type: 'u32' } },
});
export const VFIO_REGION_SPARSE_MMAP_AREA = defineStruct({
  name: 'vfio_region_sparse_mmap_area', size: 16, headers: 'common',
  fields: { offset: { offset: 0, type: 'u64' }, size: { offset: 8, type: 'u64' } },
});
export const VFIO_REGION_INFO_CAP_TYPE = defineStruct({
  name: 'vfio_region_info_cap_type', size: 16, headers: 'common',
  fields: { type: { offset: 8, type: 'u32' }, subtype: { offset: 12, type: 'u32' } },
});
export const VFIO_IRQ_INFO = defineStruct({
  name: 'vfio_irq_info', size: 16, headers: 'common',
  fields: {
    argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, index: { offset: 8, type: 'u32' },
    count: { offset: 12, type: 'u32' },
  },
});
export const VFIO_IOMMU_TYPE1_DMA_MAP = defineStruct({
  name: 'vfio_iommu_type1_dma_map', size: 32, headers: 'common',
  fields: {
    argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, vaddr: { offset: 8, type: 'u64' },
    iova: { offset: 16, type: 'u64' }, size: { offset: 24, type: 'u64' },
  },
});
export const VFIO_IOMMU_TYPE1_DMA_UNMAP = defineStruct({
  name: 'vfio_iommu_type1_dma_unmap', size: 24, headers: 'common',
  fields: {
    argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, iova: { offset: 8, type: 'u64' },
    size: { offset: 16, type: 'u64' },
  },
});
/** Linux 6.6+; the 6.1 headers the ABI test compiles against predate it. */
export const VFIO_DEVICE_BIND_IOMMUFD = defineStruct({
  name: 'vfio_device_bind_iommufd', size: 16, headers: 'linux-6.6',
  fields: {
    argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, iommufd: { offset: 8, type: 'i32' },
    out_devid: { offset: 12, type: 'u32' },
  },
});
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = defineStruct({
  name: 'vfio_device_attach_iommufd_pt', size: 12, headers: 'linux-6.6',
  fields: { argsz: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, pt_id: { offset: 8, type: 'u32' } },
});

/** Struct sizes by C name (the sizes of the tables above). */
export const SIZEOF = {
  vfio_group_status: VFIO_GROUP_STATUS.size,
  vfio_device_info: VFIO_DEVICE_INFO.size,
  vfio_region_info: VFIO_REGION_INFO.size,
  vfio_info_cap_header: VFIO_INFO_CAP_HEADER.size,
  vfio_region_info_cap_sparse_mmap: VFIO_REGION_INFO_CAP_SPARSE_MMAP.size,
  vfio_region_sparse_mmap_area: VFIO_REGION_SPARSE_MMAP_AREA.size,
  vfio_region_info_cap_type: VFIO_REGION_INFO_CAP_TYPE.size,
  vfio_irq_info: VFIO_IRQ_INFO.size,
  vfio_iommu_type1_dma_map: VFIO_IOMMU_TYPE1_DMA_MAP.size,
  vfio_iommu_type1_dma_unmap: VFIO_IOMMU_TYPE1_DMA_UNMAP.size,
  vfio_device_bind_iommufd: VFIO_DEVICE_BIND_IOMMUFD.size,
  vfio_device_attach_iommufd_pt: VFIO_DEVICE_ATTACH_IOMMUFD_PT.size,
} as const;

// ---- struct vfio_group_status ---------------------------------------------------------------

export interface VfioGroupStatus { argsz: number; flags: number }
export function encodeGroupStatus(): Buffer {
  return encodeStruct(VFIO_GROUP_STATUS, { argsz: SIZEOF.vfio_group_status });
}
export function decodeGroupStatus(b: Buffer): VfioGroupStatus {
  return decodeStruct(VFIO_GROUP_STATUS, b);
}

// ---- struct vfio_device_info ----------------------------------------------------------------

export interface VfioDeviceInfo { argsz: number; flags: number; numRegions: number; numIrqs: number; capOffset: number }
export function encodeDeviceInfo(argsz: number = SIZEOF.vfio_device_info): Buffer {
  checkArgsz(VFIO_DEVICE_INFO, argsz);
  return encodeStruct(VFIO_DEVICE_INFO, { argsz }, argsz);
}
export function decodeDeviceInfo(b: Buffer): VfioDeviceInfo {
  return decodeStruct(VFIO_DEVICE_INFO, b);
}

// ---- struct vfio_region_info ----------------------------------------------------------------

export interface VfioRegionInfo { argsz: number; flags: number; index: number; capOffset: number; size: bigint; offset: bigint }
/** A request buffer of `argsz` bytes (>= 32) asking for region `index`. */
export function encodeRegionInfo(index: number, argsz: number = SIZEOF.vfio_region_info): Buffer {
  checkU32('index', index);
  checkArgsz(VFIO_REGION_INFO, argsz);
  return encodeStruct(VFIO_REGION_INFO, { argsz, index }, argsz);
}
export function decodeRegionInfo(b: Buffer): VfioRegionInfo {
  return decodeStruct(VFIO_REGION_INFO, b);
}
/** Writes a full vfio_region_info (used by fakes and fixtures to produce kernel-shaped replies). */
export function writeRegionInfo(b: Buffer, info: VfioRegionInfo): void {
  writeStruct(b, VFIO_REGION_INFO, info);
}

// ---- struct vfio_irq_info -------------------------------------------------------------------

export interface VfioIrqInfo { argsz: number; flags: number; index: number; count: number }
export function encodeIrqInfo(index: number): Buffer {
  return encodeStruct(VFIO_IRQ_INFO, { argsz: SIZEOF.vfio_irq_info, index });
}
export function decodeIrqInfo(b: Buffer): VfioIrqInfo {
  return decodeStruct(VFIO_IRQ_INFO, b);
}

// ---- struct vfio_iommu_type1_dma_map / unmap ------------------------------------------------

export interface VfioDmaMap { flags: number; vaddr: bigint; iova: bigint; size: bigint }
export function encodeDmaMap(m: VfioDmaMap): Buffer {
  const { flags, vaddr, iova, size } = m;
  return encodeStruct(VFIO_IOMMU_TYPE1_DMA_MAP, { argsz: SIZEOF.vfio_iommu_type1_dma_map, flags, vaddr, iova, size });
}
export function decodeDmaMap(b: Buffer): VfioDmaMap & { argsz: number } {
  return decodeStruct(VFIO_IOMMU_TYPE1_DMA_MAP, b);
}
export interface VfioDmaUnmap { flags: number; iova: bigint; size: bigint }
export function encodeDmaUnmap(m: VfioDmaUnmap): Buffer {
  const { flags, iova, size } = m;
  return encodeStruct(VFIO_IOMMU_TYPE1_DMA_UNMAP, { argsz: SIZEOF.vfio_iommu_type1_dma_unmap, flags, iova, size });
}
export function decodeDmaUnmap(b: Buffer): VfioDmaUnmap & { argsz: number } {
  return decodeStruct(VFIO_IOMMU_TYPE1_DMA_UNMAP, b);
}

// ---- cdev / iommufd binding (Linux 6.6+) ----------------------------------------------------

/** struct vfio_device_bind_iommufd; `iommufd` -1 binds in noiommu mode (needs CAP_SYS_RAWIO). */
export function encodeBindIommufd(iommufd: number): Buffer {
  return encodeStruct(VFIO_DEVICE_BIND_IOMMUFD, { argsz: SIZEOF.vfio_device_bind_iommufd, iommufd });
}
export function decodeBindIommufd(b: Buffer): { argsz: number; flags: number; iommufd: number; outDevid: number } {
  return decodeStruct(VFIO_DEVICE_BIND_IOMMUFD, b);
}
export function encodeAttachIommufdPt(ptId: number): Buffer {
  return encodeStruct(VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: SIZEOF.vfio_device_attach_iommufd_pt, ptId });
}
export function decodeAttachIommufdPt(b: Buffer): { argsz: number; flags: number; ptId: number } {
  return decodeStruct(VFIO_DEVICE_ATTACH_IOMMUFD_PT, b);
}

/** A request may be longer than the struct (room for capabilities), never shorter. */
function checkArgsz(layout: StructLayout, argsz: number): void {
  checkU32('argsz', argsz);
  if (argsz < layout.size) throw new RangeError(`${layout.name} argsz ${argsz} < ${layout.size}`);
}

export { need };
