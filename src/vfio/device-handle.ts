/**
 * What the mapper needs from an open VFIO device. `VfioDevice` implements it; tests can implement it
 * over a memfd. Kept separate from the concrete class so map/ depends on a contract, not on how a
 * device was opened (container/group, iommufd cdev, noiommu).
 */
import type { Syscalls } from '../sys/syscalls.js';
import type { DeviceDescription } from './description.js';

/** An IOMMU address space the device's DMA goes through (type1 container or iommufd IOAS). */
export interface DmaMapper {
  readonly kind: 'type1' | 'type1v2' | 'iommufd';
  /** Map `size` bytes of host memory at `vaddr` to IO virtual address `iova`. */
  mapDma(iova: bigint, vaddr: bigint, size: bigint, prot: 'read' | 'read-write'): void;
  /** Undo exactly one earlier `mapDma(iova, ..., size)`. */
  unmapDma(iova: bigint, size: bigint): void;
  /**
   * Set when this IOMMU cannot DMA-map a BAR's mmap (iommufd before Linux 6.19 refuses PFNMAP memory):
   * the mapper then maps BARs without DMA and logs this once, instead of failing.
   */
  readonly mmioDmaUnsupported?: { readonly code: string; readonly message: string };
}

export interface VfioDeviceHandle {
  /** PCI address, for messages. */
  readonly bdf: string;
  /** The device fd that regions are mmapped from. */
  readonly fd: number;
  readonly syscalls: Syscalls;
  /** `undefined` in noiommu mode: there is no IOMMU to program, DMA uses host physical addresses. */
  readonly dma: DmaMapper | undefined;
  /**
   * True once the device (and its container or iommufd) is closed: its DMA maps died with it, so the
   * mapper forgets them instead of issuing ioctls on fds that may have been reused. Optional for stand-ins.
   */
  readonly closed?: boolean;
  /** IOMMU mode actually in use (after 'auto' resolution). */
  readonly iommuMode: 'type1' | 'type1v2' | 'iommufd' | 'noiommu';
  describe(): DeviceDescription;
}
