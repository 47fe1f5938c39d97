/* The device contract the mapper and the guest view depend on (documented on VfioDeviceHandle). */
import type { Syscalls } from '../sys/syscalls.js';
import type { DeviceDescription } from './description.js';

/** An IOMMU address space the device's DMA goes through (type1 container or iommufd IOAS). */
export interface DmaMapper {
  /** The IOMMU backend: a type1/type1v2 container or an iommufd IOAS. */
  readonly kind: 'type1' | 'type1v2' | 'iommufd';
  /**
   * Set when this address space cannot DMA-map BAR (MMIO) mmaps, only RAM: under iommufd a type1-style map
   * of a BAR mmap fails with EFAULT (the VMA is VM_PFNMAP), and peer-to-peer DMA needs the BAR exported as
   * a dma-buf (`VFIO_DEVICE_FEATURE_DMA_BUF`, Linux 6.19+). A mapper asked to DMA-map BARs logs `message`
   * once and maps them without DMA. `code` is `'IOMMUFD_NO_DMABUF_EXPORT'` (the kernel has no export) or
   * `'IOMMUFD_DMABUF_NOT_USED'` (it has, but this library does not map dma-bufs yet).
   */
  readonly mmioDmaUnsupported?: {
    /** `'IOMMUFD_NO_DMABUF_EXPORT'` or `'IOMMUFD_DMABUF_NOT_USED'`. */ readonly code: string;
    /** The same in words, logged once. */ readonly message: string;
  };
  /** Map `size` bytes of host memory at `vaddr` to IO virtual address `iova`. */
  mapDma(iova: bigint, vaddr: bigint, size: bigint, prot: 'read' | 'read-write'): void;
  /** Undo exactly one earlier `mapDma(iova, ..., size)`. */
  unmapDma(iova: bigint, size: bigint): void;
}

/**
 * What the mapper ({@link BarMapper}), {@link RegionAccess} and {@link PassthroughDevice} need from an open
 * VFIO device. {@link VfioDevice} implements it; a VMM's tests can implement it over a memfd (regions at file
 * offsets inside it, `dma: undefined`, `iommuMode: 'noiommu'`) and run the whole passthrough path against the
 * real /dev/kvm with no VFIO. Kept separate from the concrete class so the mapper depends on a contract, not
 * on how a device was opened (container/group, iommufd cdev, noiommu).
 *
 * @example
 * class MemfdDevice implements VfioDeviceHandle {
 *   readonly bdf = 'memfd:0'; readonly syscalls = realSyscalls(); readonly dma = undefined;
 *   readonly iommuMode = 'noiommu' as const; readonly fd = this.syscalls.memfdCreate('bar0', 0);
 *   describe(): DeviceDescription { return captured; } // regions' offsets point into the memfd
 * }
 * // see examples/map-memfd-device.ts and examples/serve-guest-view.ts
 */
export interface VfioDeviceHandle {
  /** PCI address, for messages. */
  readonly bdf: string;
  /** The device fd that regions are mmapped from. */
  readonly fd: number;
  /** The kernel interface the device's fd is used through. */
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
  /** The device's regions, irqs, BARs and MSI-X; region `offset`s are offsets in `fd`. */
  describe(): DeviceDescription;
}
