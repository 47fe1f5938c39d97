/**
 * arm64 probe program, run at EL1 with the MMU off (the state KVM_ARM_VCPU_INIT leaves): load from a
 * guest physical address and store the value to an unbacked "report" address, so it comes back as an
 * MMIO write exit. Encodings checked with aarch64-linux-gnu-as/objdump.
 */
import { ARM64_CORE_REG, encodeOneReg, encodeVcpuInit } from '../uapi/index.js';
import type { Syscalls } from '../sys/syscalls.js';

export const ARM64_INSN = {
  /** ldr x1, [x0] */
  LDR_X1_X0: 0xf940_0001,
  /** ldr w1, [x0] */
  LDR_W1_X0: 0xb940_0001,
  /** str x1, [x2] */
  STR_X1_X2: 0xf900_0041,
  /** b . */
  B_SELF: 0x1400_0000,
} as const;

export function arm64ReadProgram(width: 4 | 8): Buffer {
  const insns = [width === 8 ? ARM64_INSN.LDR_X1_X0 : ARM64_INSN.LDR_W1_X0, ARM64_INSN.STR_X1_X2, ARM64_INSN.B_SELF];
  const code = Buffer.alloc(insns.length * 4);
  insns.forEach((insn, i) => code.writeUInt32LE(insn, i * 4));
  return code;
}

/** KVM_ARM_PREFERRED_TARGET then KVM_ARM_VCPU_INIT with that target. */
export function initArm64(sys: Syscalls, vmFd: number, vcpuFd: number): void {
  const target = Buffer.alloc(32);
  sys.ioctl(vmFd, 'KVM_ARM_PREFERRED_TARGET', target);
  sys.ioctl(vcpuFd, 'KVM_ARM_VCPU_INIT', encodeVcpuInit(target.readUInt32LE(0)));
}

/**
 * Sets pc, x0 (address to read) and x2 (report address). KVM_SET_ONE_REG takes the *host address* of
 * the value, so values go through `scratch`, a u64 inside guest-probe memory we own (never a JS Buffer).
 */
export function setArm64Registers(
  sys: Syscalls,
  vcpuFd: number,
  scratch: { address: bigint; view: DataView; offset: number },
  values: { pc: bigint; x0: bigint; x2: bigint },
): void {
  const set = (id: bigint, value: bigint): void => {
    scratch.view.setBigUint64(scratch.offset, value, true);
    sys.ioctl(vcpuFd, 'KVM_SET_ONE_REG', encodeOneReg(id, scratch.address + BigInt(scratch.offset)));
  };
  set(ARM64_CORE_REG.x(0), values.x0);
  set(ARM64_CORE_REG.x(2), values.x2);
  set(ARM64_CORE_REG.pc, values.pc);
}
