/**
 * KVM ABI (include/uapi/linux/kvm.h): ioctl numbers, capabilities, flags and the
 * kvm_userspace_memory_region codec. Arch-specific vCPU structs live in kvm-x86.ts / kvm-arm64.ts.
 */
import { io, ior, iow, iowr } from './ioctl.js';
import { decodeStruct, defineStruct, encodeStruct } from './layout.js';
import { KVM_ONE_REG, KVM_VCPU_INIT } from './kvm-arm64.js';
import { KVM_REGS, KVM_SREGS } from './kvm-x86.js';

export const KVMIO = 0xae;
export const KVM_API_VERSION = 12;

export const KVM_USERSPACE_MEMORY_REGION = defineStruct({
  name: 'kvm_userspace_memory_region', size: 32, headers: 'common',
  fields: {
    slot: { offset: 0, type: 'u32' }, flags: { offset: 4, type: 'u32' }, guest_phys_addr: { offset: 8, type: 'u64' },
    memory_size: { offset: 16, type: 'u64' }, userspace_addr: { offset: 24, type: 'u64' },
  },
});
/** `type` in, `fd` out, `flags` in. */
export const KVM_CREATE_DEVICE = defineStruct({
  name: 'kvm_create_device', size: 12, headers: 'common',
  fields: { type: { offset: 0, type: 'u32' }, fd: { offset: 4, type: 'u32' }, flags: { offset: 8, type: 'u32' } },
});
export const KVM_DEVICE_ATTR = defineStruct({
  name: 'kvm_device_attr', size: 24, headers: 'common',
  fields: {
    flags: { offset: 0, type: 'u32' }, group: { offset: 4, type: 'u32' }, attr: { offset: 8, type: 'u64' },
    addr: { offset: 16, type: 'u64' },
  },
});

/** struct kvm_irq_level: u32 irq (arch-encoded, see `encodeArm64SpiLine`), u32 level (0 or 1). */
export const KVM_IRQ_LEVEL = defineStruct({
  name: 'kvm_irq_level', size: 8, headers: 'common', fields: { irq: { offset: 0, type: 'u32' }, level: { offset: 4, type: 'u32' } },
});

export const KVM_SIZEOF = {
  kvm_userspace_memory_region: KVM_USERSPACE_MEMORY_REGION.size,
  kvm_vcpu_init: KVM_VCPU_INIT.size,
  kvm_one_reg: KVM_ONE_REG.size,
  kvm_regs_x86: KVM_REGS.size,
  kvm_sregs_x86: KVM_SREGS.size,
  kvm_create_device: KVM_CREATE_DEVICE.size,
  kvm_device_attr: KVM_DEVICE_ATTR.size,
  kvm_irq_level: KVM_IRQ_LEVEL.size,
} as const;

export const KVM_IOCTL = {
  KVM_GET_API_VERSION: io(KVMIO, 0x00),
  KVM_CREATE_VM: io(KVMIO, 0x01),
  KVM_CHECK_EXTENSION: io(KVMIO, 0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(KVMIO, 0x04),
  KVM_CREATE_VCPU: io(KVMIO, 0x41),
  KVM_SET_USER_MEMORY_REGION: iow(KVMIO, 0x46, KVM_SIZEOF.kvm_userspace_memory_region),
  KVM_RUN: io(KVMIO, 0x80),
  KVM_GET_REGS: ior(KVMIO, 0x81, KVM_SIZEOF.kvm_regs_x86),
  KVM_SET_REGS: iow(KVMIO, 0x82, KVM_SIZEOF.kvm_regs_x86),
  KVM_GET_SREGS: ior(KVMIO, 0x83, KVM_SIZEOF.kvm_sregs_x86),
  KVM_SET_SREGS: iow(KVMIO, 0x84, KVM_SIZEOF.kvm_sregs_x86),
  KVM_GET_ONE_REG: iow(KVMIO, 0xab, KVM_SIZEOF.kvm_one_reg),
  KVM_SET_ONE_REG: iow(KVMIO, 0xac, KVM_SIZEOF.kvm_one_reg),
  KVM_ARM_VCPU_INIT: iow(KVMIO, 0xae, KVM_SIZEOF.kvm_vcpu_init),
  KVM_ARM_PREFERRED_TARGET: ior(KVMIO, 0xaf, KVM_SIZEOF.kvm_vcpu_init),
  KVM_CREATE_DEVICE: iowr(KVMIO, 0xe0, KVM_SIZEOF.kvm_create_device),
  KVM_SET_DEVICE_ATTR: iow(KVMIO, 0xe1, KVM_SIZEOF.kvm_device_attr),
  KVM_GET_DEVICE_ATTR: iow(KVMIO, 0xe2, KVM_SIZEOF.kvm_device_attr),
  KVM_HAS_DEVICE_ATTR: iow(KVMIO, 0xe3, KVM_SIZEOF.kvm_device_attr),
  KVM_IRQ_LINE: iow(KVMIO, 0x61, KVM_SIZEOF.kvm_irq_level),
} as const;

export const KVM_CAP = {
  USER_MEMORY: 3,
  NR_MEMSLOTS: 10,
  NR_VCPUS: 9,
  MAX_VCPUS: 66,
  READONLY_MEM: 81,
  ARM_VM_IPA_SIZE: 165,
} as const;

export const KVM_MEM_FLAGS = { LOG_DIRTY_PAGES: 1 << 0, READONLY: 1 << 1 } as const;

export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

/** `kvm_run.system_event.type` (KVM_EXIT_SYSTEM_EVENT): on arm64, PSCI SYSTEM_OFF / SYSTEM_RESET from the guest. */
export const KVM_SYSTEM_EVENT = {
  /** Power off (PSCI SYSTEM_OFF). */ SHUTDOWN: 1,
  /** Reboot (PSCI SYSTEM_RESET). */ RESET: 2,
  /** The guest reported a crash. */ CRASH: 3,
} as const;

/** struct kvm_userspace_memory_region. `memorySize` 0 deletes the slot. */
export interface KvmUserspaceMemoryRegion {
  slot: number;
  flags: number;
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
}
export function encodeUserspaceMemoryRegion(r: KvmUserspaceMemoryRegion): Buffer {
  const { slot, flags, guestPhysAddr, memorySize, userspaceAddr } = r;
  return encodeStruct(KVM_USERSPACE_MEMORY_REGION, { slot, flags, guestPhysAddr, memorySize, userspaceAddr });
}
export function decodeUserspaceMemoryRegion(b: Buffer): KvmUserspaceMemoryRegion {
  return decodeStruct(KVM_USERSPACE_MEMORY_REGION, b);
}

// ---- KVM devices (KVM_CREATE_DEVICE) and the VFIO pseudo-device -----------------------------

/** `enum kvm_device_type`: KVM_DEV_TYPE_VFIO is the fourth entry (FSL_MPIC_20 = 1, FSL_MPIC_42, XICS, VFIO). */
export const KVM_DEV_TYPE = { VFIO: 4 } as const;
/** `kvm_create_device.flags`: only ask whether the type exists; no device (and no fd) is created. */
export const KVM_CREATE_DEVICE_TEST = 1;
/**
 * Attribute group and attributes of the VFIO pseudo-device. Linux 6.6 renamed the group
 * KVM_DEV_VFIO_GROUP to KVM_DEV_VFIO_FILE (same numbers): it takes a group fd or, on the cdev path, a device fd.
 */
export const KVM_DEV_VFIO = { FILE: 1, FILE_ADD: 1, FILE_DEL: 2 } as const;

/** struct kvm_create_device: `type` in, `fd` out, `flags` in. */
export interface KvmCreateDevice { type: number; fd: number; flags: number }
export function encodeCreateDevice(type: number, flags = 0): Buffer {
  return encodeStruct(KVM_CREATE_DEVICE, { type, flags });
}
export function decodeCreateDevice(b: Buffer): KvmCreateDevice {
  return decodeStruct(KVM_CREATE_DEVICE, b);
}

/** struct kvm_device_attr. `addr` is a host address the kernel reads (for VFIO: of an `__s32` fd). */
export interface KvmDeviceAttr { flags: number; group: number; attr: bigint; addr: bigint }
export function encodeDeviceAttr(a: KvmDeviceAttr): Buffer {
  const { flags, group, attr, addr } = a;
  return encodeStruct(KVM_DEVICE_ATTR, { flags, group, attr, addr });
}
export function decodeDeviceAttr(b: Buffer): KvmDeviceAttr {
  return decodeStruct(KVM_DEVICE_ATTR, b);
}

// ---- Interrupt lines (KVM_IRQ_LINE) ----------------------------------------------------------

/** Encodes struct kvm_irq_level (irq arch-encoded, see `encodeArm64SpiLine`; level 0 or 1). @throws RangeError when irq is not u32. */
export function encodeIrqLevel(irq: number, level: boolean): Buffer {
  return encodeStruct(KVM_IRQ_LEVEL, { irq, level: level ? 1 : 0 });
}
