/**
 * The VMM pieces of src/kvm for arm64 — vCPU init with PSCI 0.2, boot registers through ONE_REG, the
 * vGICv3 + ITS devices, KVM_IRQ_LINE, system-event and MMIO exits — against an arm64 KVM fake (this
 * machine's /dev/kvm is x86). The emulated tier runs the same code on a real arm64 KVM.
 */
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Arm64Gic, KvmDevice, KvmError, KvmVcpu, KvmVm, initArm64Vcpu, setArm64BootRegisters } from '../../src/kvm/index.js';
import { ARM64_CORE_REG, KVM_DEV_ARM_VGIC, KVM_DEV_TYPE_ARM, KVM_EXIT, KVM_SYSTEM_EVENT } from '../../src/uapi/index.js';
import { FAKE_ARM64_TARGET, FakeArm64Kvm } from '../fake/fake-arm64-kvm.js';
import { captureError } from '../helpers/capture-error.js';

const E = constants.errno;
const LAYOUT = { distributor: 0x800_0000n, redistributors: 0x80a_0000n, its: 0x808_0000n } as const;

function setup(): { kvm: FakeArm64Kvm; vm: KvmVm } {
  const kvm = new FakeArm64Kvm();
  return { kvm, vm: KvmVm.create({ syscalls: kvm }) };
}

describe('arm64 vCPU bring-up', () => {
  it('initialises with the preferred target and PSCI 0.2, then sets PC, x0 = DTB, x1-x3 = 0, PSTATE = EL1h|DAIF', () => {
    const { kvm, vm } = setup();
    using vcpu = KvmVcpu.create(vm, 0);
    expect(initArm64Vcpu(vm, vcpu)).toBe(FAKE_ARM64_TARGET);
    const fake = [...kvm.vcpus.values()][0]!;
    expect(fake.init).toEqual({ target: FAKE_ARM64_TARGET, features: 1 << 2 });
    setArm64BootRegisters(vcpu, { entry: 0x4000_0000n, deviceTree: 0x47e0_0000n });
    expect(fake.regs.get(ARM64_CORE_REG.pc)).toBe(0x4000_0000n);
    expect(fake.regs.get(ARM64_CORE_REG.x(0))).toBe(0x47e0_0000n);
    for (const n of [1, 2, 3]) expect(fake.regs.get(ARM64_CORE_REG.x(n))).toBe(0n);
    expect(fake.regs.get(ARM64_CORE_REG.pstate)).toBe(0x3c5n);
    expect(vcpu.getOneReg(ARM64_CORE_REG.pc)).toBe(0x4000_0000n);
    vm.close();
  });

  it('a secondary can start powered off, and PSCI can be left to the VMM', () => {
    const { kvm, vm } = setup();
    using vcpu = KvmVcpu.create(vm, 1);
    initArm64Vcpu(vm, vcpu, { psci02: false, powerOff: true });
    expect([...kvm.vcpus.values()][0]!.init!.features).toBe(1);
    vm.close();
  });

  it('rejects a misaligned device tree or entry before asking KVM', () => {
    const { vm } = setup();
    using vcpu = KvmVcpu.create(vm, 0);
    initArm64Vcpu(vm, vcpu);
    expect(() => setArm64BootRegisters(vcpu, { entry: 0x4000_0000n, deviceTree: 0x4000_0004n })).toThrow(RangeError);
    expect(() => setArm64BootRegisters(vcpu, { entry: 0x4000_0002n, deviceTree: 0x4000_0000n })).toThrow(RangeError);
    vm.close();
  });

  it('registers before KVM_ARM_VCPU_INIT fail with the kernel errno; the scratch page goes with the vCPU', () => {
    const { kvm, vm } = setup();
    const before = kvm.inner.live();
    const vcpu = KvmVcpu.create(vm, 0);
    expect(captureError(() => vcpu.setOneReg(ARM64_CORE_REG.pc, 0n))).toMatchObject({ code: 'ENOEXEC', ioctl: 'KVM_SET_ONE_REG' });
    vcpu.close();
    expect(kvm.inner.live()).toEqual(before);
    vm.close();
  });
});

describe('Arm64Gic: vGICv3 + ITS', () => {
  it('places distributor, redistributors and ITS, initialises both, and drives SPI lines', () => {
    const { kvm, vm } = setup();
    using vcpu = KvmVcpu.create(vm, 0);
    initArm64Vcpu(vm, vcpu);
    using gic = Arm64Gic.create(vm, LAYOUT);
    const [v3, its] = [...kvm.devices.values()];
    expect(v3).toEqual({ type: KVM_DEV_TYPE_ARM.VGIC_V3, attrs: [
      { group: KVM_DEV_ARM_VGIC.GRP_ADDR, attr: 2n, value: LAYOUT.distributor },
      { group: KVM_DEV_ARM_VGIC.GRP_ADDR, attr: 3n, value: LAYOUT.redistributors },
      { group: KVM_DEV_ARM_VGIC.GRP_CTRL, attr: 0n, value: undefined },
    ] });
    expect(its).toEqual({ type: KVM_DEV_TYPE_ARM.VGIC_ITS, attrs: [
      { group: KVM_DEV_ARM_VGIC.GRP_ADDR, attr: 4n, value: LAYOUT.its },
      { group: KVM_DEV_ARM_VGIC.GRP_CTRL, attr: 0n, value: undefined },
    ] });
    expect(gic.itsFd).toBeGreaterThan(0);
    gic.setSpiLevel(1, true);
    gic.setSpiLevel(1, false);
    expect(kvm.irqLines).toEqual([{ irq: (1 << 24) | 33, level: 1 }, { irq: (1 << 24) | 33, level: 0 }]);
    expect(() => gic.setSpiLevel(988, true)).toThrow(RangeError);
    expect(Arm64Gic.redistributorSize(2)).toBe(0x4_0000n);
    vm.close();
  });

  it('without an ITS, creates only the GIC', () => {
    const { kvm, vm } = setup();
    using gic = Arm64Gic.create(vm, { distributor: LAYOUT.distributor, redistributors: LAYOUT.redistributors });
    expect(gic.itsFd).toBeUndefined();
    expect([...kvm.devices.values()].map((d) => d.type)).toEqual([KVM_DEV_TYPE_ARM.VGIC_V3]);
    vm.close();
  });

  it('rejects a base that is not 64 KiB aligned', () => {
    const { vm } = setup();
    expect(() => Arm64Gic.create(vm, { ...LAYOUT, its: 0x808_1000n })).toThrow(/its base 0x8081000 is not 64 KiB aligned/);
    vm.close();
  });

  it('failing every call in turn leaves no fd, mapping or device behind, and says which ioctl failed', () => {
    const reference = setup();
    const first = reference.kvm.calls;
    Arm64Gic.create(reference.vm, LAYOUT).close();
    const total = reference.kvm.calls - first;
    expect(total).toBeGreaterThanOrEqual(16);
    let failures = 0;
    for (let index = 0; index < total; index++) {
      const { kvm, vm } = setup();
      const before = kvm.inner.live();
      const failing = kvm.calls + index;
      kvm.failAt(failing, E.EINVAL);
      try {
        Arm64Gic.create(vm, LAYOUT).close();
      } catch (error) {
        failures++;
        if (error instanceof KvmError) expect(error.ioctl).toMatch(/^KVM_(CREATE_DEVICE|SET_DEVICE_ATTR)$/);
      }
      // A failed munmap leaves its mapping (nothing else can be done); everything else is released.
      const leftMapping = kvm.names[failing] === 'munmap' ? 1 : 0;
      expect(kvm.inner.live()).toEqual({ ...before, mmaps: before.mmaps + leftMapping });
      vm.close();
    }
    // Only the memfd closes (and the final closes of a created GIC) may fail without failing create.
    expect(failures).toBeGreaterThanOrEqual(total - 6);
  });

  it('KvmDevice: get/has attributes, a second vGIC is EEXIST, an unknown type ENODEV', () => {
    const { vm } = setup();
    using gic = KvmDevice.create(vm, KVM_DEV_TYPE_ARM.VGIC_V3, 'vgic-v3');
    gic.setAttr(KVM_DEV_ARM_VGIC.GRP_ADDR, 2n, 0x800_0000n);
    expect(gic.getAttr(KVM_DEV_ARM_VGIC.GRP_ADDR, 2n)).toBe(0x800_0000n);
    expect(gic.hasAttr(KVM_DEV_ARM_VGIC.GRP_ADDR, 2n)).toBe(true);
    expect(gic.hasAttr(99, 0n)).toBe(false);
    expect(captureError(() => KvmDevice.create(vm, KVM_DEV_TYPE_ARM.VGIC_V3, 'vgic-v3'))).toMatchObject({ code: 'EEXIST', ioctl: 'KVM_CREATE_DEVICE' });
    expect(captureError(() => KvmDevice.create(vm, 42))).toMatchObject({ code: 'ENODEV', message: expect.stringContaining('device type 42') as unknown });
    gic.setAttr(KVM_DEV_ARM_VGIC.GRP_CTRL, 0n);
    expect(captureError(() => gic.setAttr(KVM_DEV_ARM_VGIC.GRP_ADDR, 2n, 0n))).toMatchObject({ code: 'EBUSY' });
    gic.close();
    expect(captureError(() => gic.setAttr(0, 0n))).toMatchObject({ code: 'CLOSED' });
    vm.close();
  });
});

describe('KvmVcpu exits a VMM handles', () => {
  it('decodes PSCI SYSTEM_OFF and SYSTEM_RESET as system events with their data words', () => {
    const { kvm, vm } = setup();
    using vcpu = KvmVcpu.create(vm, 0);
    initArm64Vcpu(vm, vcpu);
    let type: number = KVM_SYSTEM_EVENT.SHUTDOWN;
    kvm.guest = (_v, run) => {
      run.setUint32(8, KVM_EXIT.SYSTEM_EVENT, true);
      run.setUint32(32, type, true);
      run.setUint32(36, 1, true);
      run.setBigUint64(40, 0x8400_0008n, true);
    };
    expect(vcpu.run()).toEqual({ kind: 'system-event', event: 'shutdown', type: 1, data: [0x8400_0008n] });
    type = KVM_SYSTEM_EVENT.RESET;
    expect(vcpu.run()).toMatchObject({ event: 'reset', type: 2 });
    type = 77;
    expect(vcpu.run()).toMatchObject({ event: 'unknown', type: 77 });
    // A kernel that claims more data words than the array holds is read only as far as the array goes.
    kvm.guest = (_v, run) => {
      run.setUint32(8, KVM_EXIT.SYSTEM_EVENT, true);
      run.setUint32(32, KVM_SYSTEM_EVENT.CRASH, true);
      run.setUint32(36, 0xffff_ffff, true);
    };
    const crash = vcpu.run();
    expect(crash.kind === 'system-event' && crash.data.length).toBe(16);
    vm.close();
  });

  it('answers an MMIO read in place: the data lands in kvm_run.mmio.data, sized by the access', () => {
    const { kvm, vm } = setup();
    using vcpu = KvmVcpu.create(vm, 0);
    initArm64Vcpu(vm, vcpu);
    let seen: bigint | undefined;
    let first = true;
    kvm.guest = (_v, run) => {
      if (!first) seen = run.getBigUint64(40, true);
      first = false;
      run.setUint32(8, KVM_EXIT.MMIO, true);
      run.setBigUint64(32, 0x900_0018n, true);
      run.setBigUint64(40, 0n, true);
      run.setUint32(48, 4, true);
      run.setUint8(52, 0);
    };
    expect(vcpu.run()).toEqual({ kind: 'mmio', address: 0x900_0018n, isWrite: false, length: 4, data: 0n });
    expect(() => vcpu.answerMmioRead(0x1_0000_0000n)).toThrow(RangeError);
    vcpu.answerMmioRead(0x90n);
    expect(captureError(() => vcpu.answerMmioRead(0x90n))).toMatchObject({ code: 'NO_PENDING_READ' });
    vcpu.run();
    expect(seen).toBe(0x90n);
    vm.close();
  });

  it('refuses to answer a write', () => {
    const { kvm, vm } = setup();
    using vcpu = KvmVcpu.create(vm, 0);
    initArm64Vcpu(vm, vcpu);
    kvm.guest = (_v, run) => {
      run.setUint32(8, KVM_EXIT.MMIO, true);
      run.setUint32(48, 4, true);
      run.setUint8(52, 1);
    };
    vcpu.run();
    expect(captureError(() => vcpu.answerMmioRead(1n))).toMatchObject({ code: 'NO_PENDING_READ' });
    vm.close();
  });
});
