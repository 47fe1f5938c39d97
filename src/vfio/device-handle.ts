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
  /**
   * Set when this address space cannot DMA-map BAR (MMIO) mmaps, only RAM: under iommufd a type1-style map
   * of a BAR mmap fails with EFAULT (the VMA is VM_PFNMAP), and peer-to-peer DMA needs the BAR exported as
   * a dma-buf (`VFIO_DEVICE_FEATURE_DMA_BUF`, Linux 6.19+). A mapper asked to DMA-map BARs logs `message`
   * once and maps them without DMA. `code` is `'IOMMUFD_NO_DMABUF_EXPORT'` (the kernel has no export) or
   * `'IOMMUFD_DMABUF_NOT_USED'` (it has, but this library does not map dma-bufs yet).
   */
  readonly mmioDmaUnsupported?: { readonly code: string; readonly message: string };
  /** Map `size` bytes of host memory at `vaddr` to IO virtual address `iova`. */
  mapDma(iova: bigint, vaddr: bigint, size: bigint, prot: 'read' | 'read-write'): void;
  /** Undo exactly one earlier `mapDma(iova, ..., size)`. */
  unmapDma(iova: bigint, size: bigint): void;
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
