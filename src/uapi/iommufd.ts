/**
 * iommufd ABI (include/uapi/linux/iommufd.h, Linux 6.2+; the cdev VFIO path needs 6.6+).
 * Debian 12's 6.1 headers predate this file, so these layouts are checked against the kernel
 * source rather than an installed header.
 */
import { io } from './ioctl.js';
import { decodeStruct, defineStruct, encodeStruct } from './layout.js';

export const IOMMUFD_TYPE = 0x3b; // ';' like VFIO; commands start at 0x80
const cmd = (n: number): number => io(IOMMUFD_TYPE, 0x80 + n);

export const IOMMUFD_IOCTL = {
  IOMMU_DESTROY: cmd(0),
  IOMMU_IOAS_ALLOC: cmd(1),
  IOMMU_IOAS_ALLOW_IOVAS: cmd(2),
  IOMMU_IOAS_COPY: cmd(3),
  IOMMU_IOAS_IOVA_RANGES: cmd(4),
  IOMMU_IOAS_MAP: cmd(5),
  IOMMU_IOAS_UNMAP: cmd(6),
} as const;

export const IOMMU_IOAS_MAP_FLAGS = { FIXED_IOVA: 1, WRITEABLE: 2, READABLE: 4 } as const;

const u32 = (offset: number) => ({ offset, type: 'u32' }) as const;
const u64 = (offset: number) => ({ offset, type: 'u64' }) as const;

/** iommufd.h is not in the 6.1 headers the ABI test compiles against (headers: 'linux-6.6'). */
export const IOMMU_DESTROY = defineStruct({ name: 'iommu_destroy', size: 8, headers: 'linux-6.6', fields: { size: u32(0), id: u32(4) } });
export const IOMMU_IOAS_ALLOC = defineStruct({
  name: 'iommu_ioas_alloc', size: 12, headers: 'linux-6.6', fields: { size: u32(0), flags: u32(4), out_ioas_id: u32(8) },
});
export const IOMMU_IOAS_MAP = defineStruct({
  name: 'iommu_ioas_map', size: 40, headers: 'linux-6.6',
  fields: { size: u32(0), flags: u32(4), ioas_id: u32(8), user_va: u64(16), length: u64(24), iova: u64(32) },
});
export const IOMMU_IOAS_UNMAP = defineStruct({
  name: 'iommu_ioas_unmap', size: 24, headers: 'linux-6.6', fields: { size: u32(0), ioas_id: u32(4), iova: u64(8), length: u64(16) },
});

export const IOMMUFD_SIZEOF = {
  iommu_destroy: IOMMU_DESTROY.size,
  iommu_ioas_alloc: IOMMU_IOAS_ALLOC.size,
  iommu_ioas_map: IOMMU_IOAS_MAP.size,
  iommu_ioas_unmap: IOMMU_IOAS_UNMAP.size,
} as const;

export function encodeIommuDestroy(id: number): Buffer {
  return encodeStruct(IOMMU_DESTROY, { size: IOMMUFD_SIZEOF.iommu_destroy, id });
}
export function encodeIoasAlloc(): Buffer {
  return encodeStruct(IOMMU_IOAS_ALLOC, { size: IOMMUFD_SIZEOF.iommu_ioas_alloc });
}
export function decodeIoasAlloc(b: Buffer): { size: number; flags: number; outIoasId: number } {
  return decodeStruct(IOMMU_IOAS_ALLOC, b);
}
export interface IoasMap { flags: number; ioasId: number; userVa: bigint; length: bigint; iova: bigint }
export function encodeIoasMap(m: IoasMap): Buffer {
  const { flags, ioasId, userVa, length, iova } = m;
  return encodeStruct(IOMMU_IOAS_MAP, { size: IOMMUFD_SIZEOF.iommu_ioas_map, flags, ioasId, userVa, length, iova });
}
export function decodeIoasMap(b: Buffer): IoasMap & { size: number } {
  return decodeStruct(IOMMU_IOAS_MAP, b);
}
export interface IoasUnmap { ioasId: number; iova: bigint; length: bigint }
export function encodeIoasUnmap(m: IoasUnmap): Buffer {
  const { ioasId, iova, length } = m;
  return encodeStruct(IOMMU_IOAS_UNMAP, { size: IOMMUFD_SIZEOF.iommu_ioas_unmap, ioasId, iova, length });
}
export function decodeIoasUnmap(b: Buffer): IoasUnmap & { size: number } {
  return decodeStruct(IOMMU_IOAS_UNMAP, b);
}
