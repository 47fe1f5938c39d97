/** The Linux ABI as data: ioctl numbers, flags, struct codecs. Imports nothing outside uapi/. */
import { VFIO_IOCTL } from './vfio.js';
import { IOMMUFD_IOCTL } from './iommufd.js';
import { KVM_IOCTL } from './kvm.js';
import { KVM_IRQ_IOCTL } from './kvm-irq.js';

export * from './ioctl.js';
export * from './u64.js';
export * from './vfio.js';
export * from './vfio-feature.js';
export * from './iommufd.js';
export * from './kvm.js';
export * from './kvm-irq.js';
export * from './vfio-irq.js';

/** Every ioctl the library issues, by kernel name. `Syscalls.ioctl` takes these names. */
export const IOCTL = { ...VFIO_IOCTL, ...IOMMUFD_IOCTL, ...KVM_IOCTL, ...KVM_IRQ_IOCTL } as const;
export type IoctlName = keyof typeof IOCTL;
export * from './kvm-x86.js';
export * from './kvm-arm64.js';
