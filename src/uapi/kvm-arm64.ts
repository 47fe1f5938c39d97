/**
 * arm64 vCPU ABI (arch/arm64/include/uapi/asm/kvm.h): KVM_{GET,SET}_ONE_REG ids of core registers and
 * struct kvm_vcpu_init / kvm_one_reg codecs.
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
  x: (n: number): bigint => {
    if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`x${n} is not a general register`);
    return coreReg(n * 8);
  },
  sp: coreReg(31 * 8),
  pc: coreReg(32 * 8),
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
