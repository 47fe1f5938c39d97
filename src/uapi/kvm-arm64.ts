/**
 * arm64 vCPU ABI (arch/arm64/include/uapi/asm/kvm.h): KVM_{GET,SET}_ONE_REG ids of core registers and
 * struct kvm_vcpu_init / kvm_one_reg codecs.
 */
import { checkU64 } from './u64.js';

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

/** struct kvm_vcpu_init: u32 target, u32 features[7]. */
export function encodeVcpuInit(target: number, features: readonly number[] = []): Buffer {
  if (features.length > 7) throw new RangeError('kvm_vcpu_init has 7 feature words');
  const b = Buffer.alloc(32);
  b.writeUInt32LE(target, 0);
  features.forEach((word, i) => b.writeUInt32LE(word, 4 + i * 4));
  return b;
}

/** struct kvm_one_reg: u64 id, u64 addr (host address of the value). */
export function encodeOneReg(id: bigint, valueAddress: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(checkU64('id', id), 0);
  b.writeBigUInt64LE(checkU64('addr', valueAddress), 8);
  return b;
}
