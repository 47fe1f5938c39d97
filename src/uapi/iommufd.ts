/**
 * iommufd ABI (include/uapi/linux/iommufd.h, Linux 6.2+; the cdev VFIO path needs 6.6+).
 * Debian 12's 6.1 headers predate this file, so these layouts are checked against the kernel
 * source rather than an installed header.
 */
import { io } from './ioctl.js';
import { need } from './vfio.js';
import { checkU32, checkU64 } from './u64.js';

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

export const IOMMUFD_SIZEOF = { iommu_destroy: 8, iommu_ioas_alloc: 12, iommu_ioas_map: 40, iommu_ioas_unmap: 24 } as const;

export function encodeIommuDestroy(id: number): Buffer {
  const b = Buffer.alloc(IOMMUFD_SIZEOF.iommu_destroy);
  b.writeUInt32LE(IOMMUFD_SIZEOF.iommu_destroy, 0);
  b.writeUInt32LE(checkU32('id', id), 4);
  return b;
}
export function encodeIoasAlloc(): Buffer {
  const b = Buffer.alloc(IOMMUFD_SIZEOF.iommu_ioas_alloc);
  b.writeUInt32LE(IOMMUFD_SIZEOF.iommu_ioas_alloc, 0);
  return b;
}
export function decodeIoasAlloc(b: Buffer): { size: number; flags: number; outIoasId: number } {
  need(b, IOMMUFD_SIZEOF.iommu_ioas_alloc, 'iommu_ioas_alloc');
  return { size: b.readUInt32LE(0), flags: b.readUInt32LE(4), outIoasId: b.readUInt32LE(8) };
}
export interface IoasMap { flags: number; ioasId: number; userVa: bigint; length: bigint; iova: bigint }
export function encodeIoasMap(m: IoasMap): Buffer {
  const b = Buffer.alloc(IOMMUFD_SIZEOF.iommu_ioas_map);
  b.writeUInt32LE(IOMMUFD_SIZEOF.iommu_ioas_map, 0);
  b.writeUInt32LE(checkU32('flags', m.flags), 4);
  b.writeUInt32LE(checkU32('ioas_id', m.ioasId), 8);
  b.writeBigUInt64LE(checkU64('user_va', m.userVa), 16);
  b.writeBigUInt64LE(checkU64('length', m.length), 24);
  b.writeBigUInt64LE(checkU64('iova', m.iova), 32);
  return b;
}
export function decodeIoasMap(b: Buffer): IoasMap & { size: number } {
  need(b, IOMMUFD_SIZEOF.iommu_ioas_map, 'iommu_ioas_map');
  return { size: b.readUInt32LE(0), flags: b.readUInt32LE(4), ioasId: b.readUInt32LE(8), userVa: b.readBigUInt64LE(16), length: b.readBigUInt64LE(24), iova: b.readBigUInt64LE(32) };
}
export interface IoasUnmap { ioasId: number; iova: bigint; length: bigint }
export function encodeIoasUnmap(m: IoasUnmap): Buffer {
  const b = Buffer.alloc(IOMMUFD_SIZEOF.iommu_ioas_unmap);
  b.writeUInt32LE(IOMMUFD_SIZEOF.iommu_ioas_unmap, 0);
  b.writeUInt32LE(checkU32('ioas_id', m.ioasId), 4);
  b.writeBigUInt64LE(checkU64('iova', m.iova), 8);
  b.writeBigUInt64LE(checkU64('length', m.length), 16);
  return b;
}
export function decodeIoasUnmap(b: Buffer): IoasUnmap & { size: number } {
  need(b, IOMMUFD_SIZEOF.iommu_ioas_unmap, 'iommu_ioas_unmap');
  return { size: b.readUInt32LE(0), ioasId: b.readUInt32LE(4), iova: b.readBigUInt64LE(8), length: b.readBigUInt64LE(16) };
}
