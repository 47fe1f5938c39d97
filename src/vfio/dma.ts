/** DMA mappers: the IOMMU address space a device's DMA goes through (type1 container, iommufd IOAS). */
import {
  IOMMU_IOAS_MAP_FLAGS, VFIO_DMA_MAP_FLAGS, encodeDmaMap, encodeDmaUnmap, encodeIoasMap, encodeIoasUnmap,
} from '../uapi/index.js';
import type { Syscalls } from '../sys/syscalls.js';
import type { DmaMapper } from './device-handle.js';
import type { MmioDmaUnsupported } from './mmio-dma-support.js';

export class Type1DmaMapper implements DmaMapper {
  constructor(
    readonly kind: 'type1' | 'type1v2',
    private readonly sys: Syscalls,
    private readonly containerFd: number,
  ) {}

  mapDma(iova: bigint, vaddr: bigint, size: bigint, prot: 'read' | 'read-write'): void {
    const flags = VFIO_DMA_MAP_FLAGS.READ | (prot === 'read-write' ? VFIO_DMA_MAP_FLAGS.WRITE : 0);
    this.sys.ioctl(this.containerFd, 'VFIO_IOMMU_MAP_DMA', encodeDmaMap({ flags, vaddr, iova, size }));
  }

  unmapDma(iova: bigint, size: bigint): void {
    this.sys.ioctl(this.containerFd, 'VFIO_IOMMU_UNMAP_DMA', encodeDmaUnmap({ flags: 0, iova, size }));
  }
}

/**
 * An iommufd IOAS. Maps RAM; BAR mmaps cannot be mapped (EFAULT) without dma-buf export, which
 * `mmioDmaUnsupported` reports (set from `probeIommufdMmioDma` as each device binds) so a mapper can skip
 * them with one warning.
 */
export class IommufdDmaMapper implements DmaMapper {
  readonly kind = 'iommufd';
  #mmioDma: MmioDmaUnsupported | undefined;

  constructor(
    private readonly sys: Syscalls,
    private readonly iommuFd: number,
    private readonly ioasId: number,
  ) {}

  /** Why BARs cannot be DMA-mapped here; undefined until a device has bound to this IOAS. */
  get mmioDmaUnsupported(): MmioDmaUnsupported | undefined {
    return this.#mmioDma;
  }

  /**
   * Records a bound device's probe result. The IOAS is shared by the context's devices; "no export at all"
   * outranks "export present but unused", so the answer never gets more optimistic as devices join.
   */
  noteMmioDma(probe: MmioDmaUnsupported): void {
    if (this.#mmioDma === undefined || probe.code === 'IOMMUFD_NO_DMABUF_EXPORT') this.#mmioDma = probe;
  }

  mapDma(iova: bigint, vaddr: bigint, size: bigint, prot: 'read' | 'read-write'): void {
    const { FIXED_IOVA, READABLE, WRITEABLE } = IOMMU_IOAS_MAP_FLAGS;
    const flags = FIXED_IOVA | READABLE | (prot === 'read-write' ? WRITEABLE : 0);
    this.sys.ioctl(this.iommuFd, 'IOMMU_IOAS_MAP', encodeIoasMap({ flags, ioasId: this.ioasId, userVa: vaddr, length: size, iova }));
  }

  unmapDma(iova: bigint, size: bigint): void {
    this.sys.ioctl(this.iommuFd, 'IOMMU_IOAS_UNMAP', encodeIoasUnmap({ ioasId: this.ioasId, iova, length: size }));
  }
}
