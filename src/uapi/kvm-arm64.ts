/**
 * arm64 vCPU ABI (arch/arm64/include/uapi/asm/kvm.h): KVM_{GET,SET}_ONE_REG ids of core registers,
 * struct kvm_vcpu_init / kvm_one_reg codecs, vCPU features and PSTATE bits, the in-kernel vGICv3/ITS
 * device attributes and the KVM_IRQ_LINE number encoding.
 */
import { defineStruct, encodeStruct } from './layout.js';

const KVM_REG_ARM64 = 0x6000_0000_0000_0000n;
const KVM_REG_SIZE_U64 = 0x0030_0000_0000_0000n;
const KVM_REG_ARM_CORE = 0x0010n << 16n;

/** Core register id: its offset in struct kvm_regs, in 32-bit words. */
function coreReg(byteOffset: number): bigint {
  return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | BigInt(byteOffset / 4);
}

/** struct user_pt_regs: x0..x30, sp, pc, pstate (u64 each) at the start of struct kvm_regs. */
export const ARM64_CORE_REG = {
  /** The id of general register x`n` (0-30); RangeError for any other `n`. */
  x: (n: number): bigint => {
    if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`x${n} is not a general register`);
    return coreReg(n * 8);
  },
  /** The id of SP (SP_EL0). */
  sp: coreReg(31 * 8),
  /** The id of PC. */
  pc: coreReg(32 * 8),
  /** The id of PSTATE. */
  pstate: coreReg(33 * 8),
} as const;

/** struct kvm_vcpu_init: u32 target, u32 features[7] (arm64's asm/kvm.h). */
export const KVM_VCPU_INIT = defineStruct({
  name: 'kvm_vcpu_init', size: 32, headers: 'aarch64',
  fields: { target: { offset: 0, type: 'u32' }, features: { offset: 4, type: 'u32', count: 7 } },
});

/** struct kvm_one_reg: u64 id, u64 addr (host address of the value). Declared in linux/kvm.h for every arch. */
export const KVM_ONE_REG = defineStruct({
  name: 'kvm_one_reg', size: 16, headers: 'common',
  fields: { id: { offset: 0, type: 'u64' }, addr: { offset: 8, type: 'u64' } },
});

/** Encodes struct kvm_vcpu_init. @throws RangeError for more than 7 feature words or values outside u32. */
export function encodeVcpuInit(target: number, features: readonly number[] = []): Buffer {
  if (features.length > 7) throw new RangeError('kvm_vcpu_init has 7 feature words');
  return encodeStruct(KVM_VCPU_INIT, { target, features });
}

/** Encodes struct kvm_one_reg. @throws RangeError when `id` or `valueAddress` is outside u64. */
export function encodeOneReg(id: bigint, valueAddress: bigint): Buffer {
  return encodeStruct(KVM_ONE_REG, { id, addr: valueAddress });
}

/** Bit numbers in `kvm_vcpu_init.features[0]`. */
export const KVM_ARM_VCPU_FEATURE = {
  /** Start the vCPU powered off (secondaries wait for PSCI CPU_ON). */
  POWER_OFF: 0,
  /** KVM implements PSCI 0.2+ (SYSTEM_OFF/RESET become KVM_EXIT_SYSTEM_EVENT). */
  PSCI_0_2: 2,
} as const;

/** PSTATE bits (arch/arm64/include/uapi/asm/ptrace.h). */
export const ARM64_PSTATE = { MODE_EL1H: 0x5, F: 0x40, I: 0x80, A: 0x100, D: 0x200 } as const;
/** What the arm64 boot protocol asks for at kernel entry: EL1h with D, A, I and F masked (0x3c5). */
export const ARM64_PSTATE_KERNEL_ENTRY = ARM64_PSTATE.MODE_EL1H | ARM64_PSTATE.F | ARM64_PSTATE.I | ARM64_PSTATE.A | ARM64_PSTATE.D;

/** `enum kvm_device_type` entries of the arm64 interrupt controllers. */
export const KVM_DEV_TYPE_ARM = { VGIC_V2: 5, VGIC_V3: 7, VGIC_ITS: 8 } as const;

/** vGIC attribute groups (KVM_DEV_ARM_VGIC_GRP_*) and the attributes used with them. */
export const KVM_DEV_ARM_VGIC = {
  GRP_ADDR: 0,
  GRP_NR_IRQS: 3,
  GRP_CTRL: 4,
  /** GRP_CTRL attribute: initialise the device (after every vCPU exists, before the first KVM_RUN). */
  CTRL_INIT: 0,
  /** GRP_ADDR attributes: guest physical base of the GICv3 distributor, redistributors, and of an ITS. */
  V3_ADDR_TYPE_DIST: 2,
  V3_ADDR_TYPE_REDIST: 3,
  ITS_ADDR_TYPE: 4,
} as const;

/** Sizes of the vGIC frames in the guest's address space (GICv3 architecture). */
export const ARM64_GIC_SIZE = {
  /** The distributor: one 64 KiB frame. */
  distributor: 0x1_0000n,
  /** RD_base + SGI_base frames: 128 KiB per vCPU. */
  redistributorPerVcpu: 0x2_0000n,
  /** The ITS: control + translation frames, 128 KiB. */
  its: 0x2_0000n,
} as const;

/** KVM_IRQ_LINE's `irq` on arm64: type (bits 24-27), vCPU index (16-23), interrupt number (0-15). */
export const KVM_ARM_IRQ = { TYPE_SHIFT: 24, VCPU_SHIFT: 16, TYPE_CPU: 0, TYPE_SPI: 1, TYPE_PPI: 2, SPI_BASE: 32 } as const;

/** The KVM_IRQ_LINE number of shared peripheral interrupt `spi` (the n in a device tree's `<0 n 4>`). */
export function encodeArm64SpiLine(spi: number): number {
  if (!Number.isInteger(spi) || spi < 0 || spi > 987) throw new RangeError(`SPI ${spi} is not in 0..987`);
  return (KVM_ARM_IRQ.TYPE_SPI << KVM_ARM_IRQ.TYPE_SHIFT) | (KVM_ARM_IRQ.SPI_BASE + spi);
}
