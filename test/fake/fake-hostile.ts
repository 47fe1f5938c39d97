/**
 * Hostile replies for the fake kernel's device ioctls: a buggy or malicious driver that reports absurd
 * counts and sizes. Each field, when set, overwrites that field of every reply after the fake wrote it.
 */
export interface HostileReplies {
  /** vfio_device_info.num_regions (e.g. 0xffffffff). */
  numRegions?: number;
  /** vfio_device_info.num_irqs. */
  numIrqs?: number;
  /** vfio_region_info.argsz of every region reply (with CAPS set). */
  regionArgsz?: number;
  /** vfio_region_info.cap_offset of every region reply (with CAPS set). */
  capOffset?: number;
  /** vfio_irq_info.count of every irq reply. */
  irqCount?: number;
  /** nr_areas of a SPARSE_MMAP capability when it comes first in a region's chain. */
  nrAreas?: number;
}

const CAPS = 8;

export function hostileDeviceInfo(buffer: Buffer, hostile: HostileReplies | undefined): void {
  if (hostile?.numRegions !== undefined) buffer.writeUInt32LE(hostile.numRegions, 8);
  if (hostile?.numIrqs !== undefined) buffer.writeUInt32LE(hostile.numIrqs, 12);
}

const SPARSE_MMAP = 1;

export function hostileRegionInfo(buffer: Buffer, hostile: HostileReplies | undefined): void {
  const capOffset = buffer.readUInt32LE(12);
  const sparseFirst = capOffset !== 0 && capOffset + 12 <= buffer.length && buffer.readUInt16LE(capOffset) === SPARSE_MMAP;
  if (hostile?.nrAreas !== undefined && sparseFirst) buffer.writeUInt32LE(hostile.nrAreas, capOffset + 8);
  if (hostile?.regionArgsz === undefined && hostile?.capOffset === undefined) return;
  buffer.writeUInt32LE(buffer.readUInt32LE(4) | CAPS, 4);
  if (hostile.regionArgsz !== undefined) buffer.writeUInt32LE(hostile.regionArgsz, 0);
  if (hostile.capOffset !== undefined) buffer.writeUInt32LE(hostile.capOffset, 12);
}

export function hostileIrqInfo(buffer: Buffer, hostile: HostileReplies | undefined): void {
  if (hostile?.irqCount !== undefined) buffer.writeUInt32LE(hostile.irqCount, 12);
}
