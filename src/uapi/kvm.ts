/**
 * KVM ABI (include/uapi/linux/kvm.h): ioctl numbers, capabilities, flags and the
 * kvm_userspace_memory_region codec. Arch-specific vCPU structs live in kvm-x86.ts / kvm-arm64.ts.
 */
import { io, ior, iow, iowr } from './ioctl.js';
import { need } from './vfio.js';
import { checkU32, checkU64 } from './u64.js';

export const KVMIO = 0xae;
export const KVM_API_VERSION = 12;

export const KVM_SIZEOF = {
  kvm_userspace_memory_region: 32,
  kvm_vcpu_init: 32,
  kvm_one_reg: 16,
  kvm_regs_x86: 144,
  kvm_sregs_x86: 312,
  kvm_create_device: 12,
  kvm_device_attr: 24,
  kvm_irq_level: 8,
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
  const b = Buffer.alloc(KVM_SIZEOF.kvm_userspace_memory_region);
  b.writeUInt32LE(checkU32('slot', r.slot), 0);
  b.writeUInt32LE(checkU32('flags', r.flags), 4);
  b.writeBigUInt64LE(checkU64('guest_phys_addr', r.guestPhysAddr), 8);
  b.writeBigUInt64LE(checkU64('memory_size', r.memorySize), 16);
  b.writeBigUInt64LE(checkU64('userspace_addr', r.userspaceAddr), 24);
  return b;
}
export function decodeUserspaceMemoryRegion(b: Buffer): KvmUserspaceMemoryRegion {
  need(b, KVM_SIZEOF.kvm_userspace_memory_region, 'kvm_userspace_memory_region');
  return { slot: b.readUInt32LE(0), flags: b.readUInt32LE(4), guestPhysAddr: b.readBigUInt64LE(8), memorySize: b.readBigUInt64LE(16), userspaceAddr: b.readBigUInt64LE(24) };
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
  const b = Buffer.alloc(KVM_SIZEOF.kvm_create_device);
  b.writeUInt32LE(checkU32('type', type), 0);
  b.writeUInt32LE(checkU32('flags', flags), 8);
  return b;
}
export function decodeCreateDevice(b: Buffer): KvmCreateDevice {
  need(b, KVM_SIZEOF.kvm_create_device, 'kvm_create_device');
  return { type: b.readUInt32LE(0), fd: b.readUInt32LE(4), flags: b.readUInt32LE(8) };
}

/** struct kvm_device_attr. `addr` is a host address the kernel reads (for VFIO: of an `__s32` fd). */
export interface KvmDeviceAttr { flags: number; group: number; attr: bigint; addr: bigint }
export function encodeDeviceAttr(a: KvmDeviceAttr): Buffer {
  const b = Buffer.alloc(KVM_SIZEOF.kvm_device_attr);
  b.writeUInt32LE(checkU32('flags', a.flags), 0);
  b.writeUInt32LE(checkU32('group', a.group), 4);
  b.writeBigUInt64LE(checkU64('attr', a.attr), 8);
  b.writeBigUInt64LE(checkU64('addr', a.addr), 16);
  return b;
}
export function decodeDeviceAttr(b: Buffer): KvmDeviceAttr {
  need(b, KVM_SIZEOF.kvm_device_attr, 'kvm_device_attr');
  return { flags: b.readUInt32LE(0), group: b.readUInt32LE(4), attr: b.readBigUInt64LE(8), addr: b.readBigUInt64LE(16) };
}

// ---- Interrupt lines (KVM_IRQ_LINE) ----------------------------------------------------------

/** struct kvm_irq_level: u32 irq (arch-encoded, see `encodeArm64IrqNumber`), u32 level (0 or 1). */
export function encodeIrqLevel(irq: number, level: boolean): Buffer {
  const b = Buffer.alloc(KVM_SIZEOF.kvm_irq_level);
  b.writeUInt32LE(checkU32('irq', irq), 0);
  b.writeUInt32LE(level ? 1 : 0, 4);
  return b;
}
