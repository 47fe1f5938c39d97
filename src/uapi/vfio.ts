/**
 * VFIO ABI (include/uapi/linux/vfio.h): ioctl numbers, flags, capability ids and struct codecs.
 * Every u64 is a bigint; every encoder range-checks before writing. Both supported targets
 * (x86-64, aarch64) are little-endian with natural alignment, so one layout serves both.
 */
import { io } from './ioctl.js';
import { checkI32, checkU32, checkU64 } from './u64.js';

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
export const VFIO_DEVICE_FLAGS = { RESET: 1 << 0, PCI: 1 << 1, PLATFORM: 1 << 2, AMBA: 1 << 3, CCW: 1 << 4, AP: 1 << 5, FSL_MC: 1 << 6, CAPS: 1 << 7, CDX: 1 << 8 } as const;
export const VFIO_REGION_FLAGS = { READ: 1, WRITE: 2, MMAP: 4, CAPS: 8 } as const;
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

export const SIZEOF = {
  vfio_group_status: 8,
  vfio_device_info: 20, // 24 since Linux 6.6 (trailing pad); replies may be larger still
  vfio_region_info: 32,
  vfio_info_cap_header: 8,
  vfio_region_info_cap_sparse_mmap: 16, // header + nr_areas + reserved, then areas
  vfio_region_sparse_mmap_area: 16,
  vfio_region_info_cap_type: 16,
  vfio_irq_info: 16,
  vfio_iommu_type1_dma_map: 32,
  vfio_iommu_type1_dma_unmap: 24,
  vfio_device_bind_iommufd: 16,
  vfio_device_attach_iommufd_pt: 12,
} as const;

// ---- struct vfio_group_status ---------------------------------------------------------------

export interface VfioGroupStatus { argsz: number; flags: number }
export function encodeGroupStatus(): Buffer {
  const b = Buffer.alloc(SIZEOF.vfio_group_status);
  b.writeUInt32LE(SIZEOF.vfio_group_status, 0);
  return b;
}
export function decodeGroupStatus(b: Buffer): VfioGroupStatus {
  need(b, SIZEOF.vfio_group_status, 'vfio_group_status');
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4) };
}

// ---- struct vfio_device_info ----------------------------------------------------------------

export interface VfioDeviceInfo { argsz: number; flags: number; numRegions: number; numIrqs: number; capOffset: number }
export function encodeDeviceInfo(argsz: number = SIZEOF.vfio_device_info): Buffer {
  checkU32('argsz', argsz);
  if (argsz < SIZEOF.vfio_device_info) throw new RangeError(`vfio_device_info argsz ${argsz} < ${SIZEOF.vfio_device_info}`);
  const b = Buffer.alloc(argsz);
  b.writeUInt32LE(argsz, 0);
  return b;
}
export function decodeDeviceInfo(b: Buffer): VfioDeviceInfo {
  need(b, SIZEOF.vfio_device_info, 'vfio_device_info');
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4), numRegions: b.readUInt32LE(8), numIrqs: b.readUInt32LE(12), capOffset: b.readUInt32LE(16) };
}

// ---- struct vfio_region_info ----------------------------------------------------------------

export interface VfioRegionInfo { argsz: number; flags: number; index: number; capOffset: number; size: bigint; offset: bigint }
/** A request buffer of `argsz` bytes (>= 32) asking for region `index`. */
export function encodeRegionInfo(index: number, argsz: number = SIZEOF.vfio_region_info): Buffer {
  checkU32('index', index);
  checkU32('argsz', argsz);
  if (argsz < SIZEOF.vfio_region_info) throw new RangeError(`vfio_region_info argsz ${argsz} < ${SIZEOF.vfio_region_info}`);
  const b = Buffer.alloc(argsz);
  b.writeUInt32LE(argsz, 0);
  b.writeUInt32LE(index, 8);
  return b;
}
export function decodeRegionInfo(b: Buffer): VfioRegionInfo {
  need(b, SIZEOF.vfio_region_info, 'vfio_region_info');
  return {
    argsz: b.readUInt32LE(0),
    flags: b.readUInt32LE(4),
    index: b.readUInt32LE(8),
    capOffset: b.readUInt32LE(12),
    size: b.readBigUInt64LE(16),
    offset: b.readBigUInt64LE(24),
  };
}
/** Writes a full vfio_region_info (used by fakes and fixtures to produce kernel-shaped replies). */
export function writeRegionInfo(b: Buffer, info: VfioRegionInfo): void {
  need(b, SIZEOF.vfio_region_info, 'vfio_region_info');
  b.writeUInt32LE(checkU32('argsz', info.argsz), 0);
  b.writeUInt32LE(checkU32('flags', info.flags), 4);
  b.writeUInt32LE(checkU32('index', info.index), 8);
  b.writeUInt32LE(checkU32('cap_offset', info.capOffset), 12);
  b.writeBigUInt64LE(checkU64('size', info.size), 16);
  b.writeBigUInt64LE(checkU64('offset', info.offset), 24);
}

// ---- struct vfio_irq_info -------------------------------------------------------------------

export interface VfioIrqInfo { argsz: number; flags: number; index: number; count: number }
export function encodeIrqInfo(index: number): Buffer {
  checkU32('index', index);
  const b = Buffer.alloc(SIZEOF.vfio_irq_info);
  b.writeUInt32LE(SIZEOF.vfio_irq_info, 0);
  b.writeUInt32LE(index, 8);
  return b;
}
export function decodeIrqInfo(b: Buffer): VfioIrqInfo {
  need(b, SIZEOF.vfio_irq_info, 'vfio_irq_info');
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4), index: b.readUInt32LE(8), count: b.readUInt32LE(12) };
}

// ---- struct vfio_iommu_type1_dma_map / unmap ------------------------------------------------

export interface VfioDmaMap { flags: number; vaddr: bigint; iova: bigint; size: bigint }
export function encodeDmaMap(m: VfioDmaMap): Buffer {
  const b = Buffer.alloc(SIZEOF.vfio_iommu_type1_dma_map);
  b.writeUInt32LE(SIZEOF.vfio_iommu_type1_dma_map, 0);
  b.writeUInt32LE(checkU32('flags', m.flags), 4);
  b.writeBigUInt64LE(checkU64('vaddr', m.vaddr), 8);
  b.writeBigUInt64LE(checkU64('iova', m.iova), 16);
  b.writeBigUInt64LE(checkU64('size', m.size), 24);
  return b;
}
export function decodeDmaMap(b: Buffer): VfioDmaMap & { argsz: number } {
  need(b, SIZEOF.vfio_iommu_type1_dma_map, 'vfio_iommu_type1_dma_map');
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4), vaddr: b.readBigUInt64LE(8), iova: b.readBigUInt64LE(16), size: b.readBigUInt64LE(24) };
}
export interface VfioDmaUnmap { flags: number; iova: bigint; size: bigint }
export function encodeDmaUnmap(m: VfioDmaUnmap): Buffer {
  const b = Buffer.alloc(SIZEOF.vfio_iommu_type1_dma_unmap);
  b.writeUInt32LE(SIZEOF.vfio_iommu_type1_dma_unmap, 0);
  b.writeUInt32LE(checkU32('flags', m.flags), 4);
  b.writeBigUInt64LE(checkU64('iova', m.iova), 8);
  b.writeBigUInt64LE(checkU64('size', m.size), 16);
  return b;
}
export function decodeDmaUnmap(b: Buffer): VfioDmaUnmap & { argsz: number } {
  need(b, SIZEOF.vfio_iommu_type1_dma_unmap, 'vfio_iommu_type1_dma_unmap');
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4), iova: b.readBigUInt64LE(8), size: b.readBigUInt64LE(16) };
}

// ---- cdev / iommufd binding (Linux 6.6+) ----------------------------------------------------

/** struct vfio_device_bind_iommufd; `iommufd` -1 binds in noiommu mode (needs CAP_SYS_RAWIO). */
export function encodeBindIommufd(iommufd: number): Buffer {
  const b = Buffer.alloc(SIZEOF.vfio_device_bind_iommufd);
  b.writeUInt32LE(SIZEOF.vfio_device_bind_iommufd, 0);
  b.writeInt32LE(checkI32('iommufd', iommufd), 8);
  return b;
}
export function decodeBindIommufd(b: Buffer): { argsz: number; flags: number; iommufd: number; outDevid: number } {
  need(b, SIZEOF.vfio_device_bind_iommufd, 'vfio_device_bind_iommufd');
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4), iommufd: b.readInt32LE(8), outDevid: b.readUInt32LE(12) };
}
export function encodeAttachIommufdPt(ptId: number): Buffer {
  const b = Buffer.alloc(SIZEOF.vfio_device_attach_iommufd_pt);
  b.writeUInt32LE(SIZEOF.vfio_device_attach_iommufd_pt, 0);
  b.writeUInt32LE(checkU32('pt_id', ptId), 8);
  return b;
}
export function decodeAttachIommufdPt(b: Buffer): { argsz: number; flags: number; ptId: number } {
  need(b, SIZEOF.vfio_device_attach_iommufd_pt, 'vfio_device_attach_iommufd_pt');
  return { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4), ptId: b.readUInt32LE(8) };
}

export function need(b: Buffer, size: number, what: string): void {
  if (b.length < size) throw new RangeError(`${what} needs ${size} bytes, buffer has ${b.length}`);
}
