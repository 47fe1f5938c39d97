/**
 * arm64 vCPU bring-up for booting a kernel: KVM_ARM_PREFERRED_TARGET + KVM_ARM_VCPU_INIT with the
 * features a VMM wants (PSCI 0.2, so the guest's SYSTEM_OFF/RESET reach the VMM as system events), and
 * the core registers of the arm64 boot protocol (Documentation/arm64/booting.rst): PC at the Image,
 * x0 = the device tree's guest physical address, x1-x3 = 0, PSTATE = EL1h with DAIF masked.
 */
import { ARM64_CORE_REG, ARM64_PSTATE_KERNEL_ENTRY, KVM_ARM_VCPU_FEATURE, KVM_SIZEOF, encodeVcpuInit } from '../uapi/index.js';
import { hex } from '../errors.js';
import type { KvmVcpu } from './vcpu.js';
import type { KvmVm } from './vm.js';

/** The vCPU features {@link initArm64Vcpu} asks KVM for. */
export interface Arm64VcpuFeatures {
  /** Let KVM implement PSCI 0.2+ (SYSTEM_OFF/RESET become `system-event` exits). Default true. */
  readonly psci02?: boolean;
  /** Start powered off: a secondary vCPU that waits for PSCI CPU_ON. Default false. */
  readonly powerOff?: boolean;
}

/**
 * Initialises `vcpu` with the host's preferred target and the requested features.
 * Returns the target KVM chose (KVM_ARM_TARGET_*), useful in logs.
 * @throws SystemError from KVM_ARM_PREFERRED_TARGET (ENODEV without an in-kernel vGIC-capable host) or
 *   KVM_ARM_VCPU_INIT (EINVAL for an unsupported feature).
 * @example
 * using vcpu = KvmVcpu.create(vm, 0);
 * initArm64Vcpu(vm, vcpu);
 * setArm64BootRegisters(vcpu, { entry: 0x4000_0000n, deviceTree: 0x47e0_0000n });
 */
export function initArm64Vcpu(vm: KvmVm, vcpu: KvmVcpu, features: Arm64VcpuFeatures = {}): number {
  const preferred = Buffer.alloc(KVM_SIZEOF.kvm_vcpu_init);
  vm.syscalls.ioctl(vm.fd, 'KVM_ARM_PREFERRED_TARGET', preferred);
  const target = preferred.readUInt32LE(0);
  vm.syscalls.ioctl(vcpu.fd, 'KVM_ARM_VCPU_INIT', encodeVcpuInit(target, [featureWord(features)]));
  return target;
}

/** `kvm_vcpu_init.features[0]` for the requested features. */
export function featureWord(features: Arm64VcpuFeatures): number {
  let word = 0;
  if (features.psci02 ?? true) word |= 1 << KVM_ARM_VCPU_FEATURE.PSCI_0_2;
  if (features.powerOff ?? false) word |= 1 << KVM_ARM_VCPU_FEATURE.POWER_OFF;
  return word;
}

/** The registers the arm64 boot protocol sets: see {@link setArm64BootRegisters}. */
export interface Arm64BootState {
  /** Guest physical address of the first instruction (the loaded Image's start). */
  readonly entry: bigint;
  /** Guest physical address of the flattened device tree (8-byte aligned). */
  readonly deviceTree: bigint;
}

/**
 * Sets PC, x0-x3 and PSTATE for a kernel entry. Call after {@link initArm64Vcpu} (which resets the rest:
 * MMU and caches off).
 * @throws RangeError when the device tree address is not 8-byte aligned; SystemError from KVM_SET_ONE_REG.
 */
export function setArm64BootRegisters(vcpu: KvmVcpu, state: Arm64BootState): void {
  if (state.deviceTree % 8n !== 0n) throw new RangeError(`device tree at ${hex(state.deviceTree)} is not 8-byte aligned`);
  if (state.entry % 4n !== 0n) throw new RangeError(`entry point ${hex(state.entry)} is not 4-byte aligned`);
  vcpu.setOneReg(ARM64_CORE_REG.pstate, BigInt(ARM64_PSTATE_KERNEL_ENTRY));
  vcpu.setOneReg(ARM64_CORE_REG.x(0), state.deviceTree);
  for (const n of [1, 2, 3]) vcpu.setOneReg(ARM64_CORE_REG.x(n), 0n);
  vcpu.setOneReg(ARM64_CORE_REG.pc, state.entry);
}
