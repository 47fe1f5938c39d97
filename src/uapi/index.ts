/** The Linux ABI as data: ioctl numbers, flags, struct codecs. Imports nothing outside uapi/. */
import * as vfio from './vfio.js';
import * as iommufd from './iommufd.js';
import * as kvm from './kvm.js';
import * as kvmIrq from './kvm-irq.js';
import { VFIO_IRQ_SET_LAYOUT } from './vfio-irq.js';
import { VFIO_DEVICE_FEATURE } from './vfio-feature.js';
import { KVM_ONE_REG, KVM_VCPU_INIT } from './kvm-arm64.js';
import { KVM_REGS, KVM_SEGMENT, KVM_SREGS } from './kvm-x86.js';
import type { StructLayout } from './layout.js';

export * from './ioctl.js';
export * from './u64.js';
export * from './layout.js';
export * from './vfio.js';
export * from './vfio-feature.js';
export * from './iommufd.js';
export * from './kvm.js';
export * from './kvm-irq.js';
export * from './vfio-irq.js';

/** Every ioctl the library issues, by kernel name. `Syscalls.ioctl` takes these names. */
export const IOCTL = { ...vfio.VFIO_IOCTL, ...iommufd.IOMMUFD_IOCTL, ...kvm.KVM_IOCTL, ...kvmIrq.KVM_IRQ_IOCTL } as const;
export type IoctlName = keyof typeof IOCTL;
export * from './kvm-x86.js';
export * from './kvm-arm64.js';

/** Every struct layout table in uapi/, which test/uapi/abi.test.ts checks against the kernel headers. */
export const STRUCT_LAYOUTS: readonly StructLayout[] = [
  vfio.VFIO_GROUP_STATUS, vfio.VFIO_DEVICE_INFO, vfio.VFIO_REGION_INFO, vfio.VFIO_INFO_CAP_HEADER,
  vfio.VFIO_REGION_INFO_CAP_SPARSE_MMAP, vfio.VFIO_REGION_SPARSE_MMAP_AREA, vfio.VFIO_REGION_INFO_CAP_TYPE, vfio.VFIO_IRQ_INFO,
  vfio.VFIO_IOMMU_TYPE1_DMA_MAP, vfio.VFIO_IOMMU_TYPE1_DMA_UNMAP, vfio.VFIO_DEVICE_BIND_IOMMUFD, vfio.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_IRQ_SET_LAYOUT, VFIO_DEVICE_FEATURE,
  iommufd.IOMMU_DESTROY, iommufd.IOMMU_IOAS_ALLOC, iommufd.IOMMU_IOAS_MAP, iommufd.IOMMU_IOAS_UNMAP,
  kvm.KVM_USERSPACE_MEMORY_REGION, kvm.KVM_CREATE_DEVICE, kvm.KVM_DEVICE_ATTR, kvm.KVM_IRQ_LEVEL,
  kvmIrq.KVM_IRQ_ROUTING, kvmIrq.KVM_IRQ_ROUTING_ENTRY, kvmIrq.KVM_IRQ_ROUTING_MSI, kvmIrq.KVM_IRQ_ROUTING_IRQCHIP,
  kvmIrq.KVM_IRQFD, kvmIrq.KVM_MSI,
  KVM_ONE_REG, KVM_VCPU_INIT, KVM_REGS, KVM_SREGS, KVM_SEGMENT,
];
