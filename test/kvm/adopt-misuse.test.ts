/**
 * KvmVm.adopt under misuse (issue 11): bad fds are typed errors, and a grant that overlaps the VMM's own
 * slots never moves or deletes them — on the real /dev/kvm, next to a VMM-owned RAM slot, and on the fake.
 */
import { describe, expect, it } from 'vitest';
import { KvmVm } from '../../src/kvm/index.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import type { Syscalls } from '../../src/sys/syscalls.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { captureError } from '../helpers/capture-error.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { hostMemory } from '../helpers/host-memory.js';

const RAM_GPA = 0n;
const BAR_GPA = 0x10_0000n;


/** A VMM: its own VM with RAM in slot 0 (one page at GPA 0). */
function vmm(sys: Syscalls, kvmPath = '/dev/kvm') {
  const page = BigInt(sys.pageSize());
  const kvm = sys.open(kvmPath, 2);
  const vmFd = sys.ioctl(kvm, 'KVM_CREATE_VM', 0);
  const ram = hostMemory(sys, 4n * page);
  const ramSlot = { slot: 0, flags: 0, guestPhysAddr: RAM_GPA, memorySize: page, userspaceAddr: ram.address };
  sys.setUserMemoryRegion(vmFd, ramSlot);
  /** The VMM's slot 0 is still exactly where it was: an identical call is KVM's no-op, an overlap is EEXIST. */
  const ramSlotIntact = (): boolean => {
    let overlap: unknown;
    try {
      sys.setUserMemoryRegion(vmFd, { ...ramSlot, slot: 7, userspaceAddr: ram.address + page });
    } catch (error) {
      overlap = error;
    }
    if ((overlap as { code?: string } | undefined)?.code !== 'EEXIST') return false;
    sys.setUserMemoryRegion(vmFd, ramSlot); // succeeds only as the no-op on an identical slot 0
    return true;
  };
  const close = (): void => {
    sys.close(vmFd);
    sys.close(kvm);
    sys.munmap(ram);
  };
  return { page, vmFd, ram, ramSlot, ramSlotIntact, close };
}

function overlappingGrant(sys: Syscalls, kvmPath?: string): void {
  const v = vmm(sys, kvmPath);
  try {
    const vm = KvmVm.adopt(v.vmFd, { syscalls: sys, slots: { first: 0, count: 2 }, ...(kvmPath && { kvmPath }) });
    // Same host address and size as the VMM's RAM slot: without the probe KVM would MOVE slot 0 here.
    const error = captureError(() => vm.addSlot({ guestPhysAddr: BAR_GPA, memorySize: v.page, userspaceAddr: v.ram.address }));
    expect(error).toMatchObject({ code: 'SLOT_IN_USE', slot: 0 });
    expect(v.ramSlotIntact()).toBe(true);
    expect(vm.slotCount).toBe(0);
    // Refused every time, never silently: the grant is wrong and the VMM must fix it.
    expect(
      captureError(() => vm.addSlot({ guestPhysAddr: BAR_GPA, memorySize: v.page, userspaceAddr: v.ram.address + v.page }))
    ).toMatchObject({ code: 'SLOT_IN_USE' });
    vm.close();
    expect(v.ramSlotIntact()).toBe(true);
  } finally {
    v.close();
  }
}

function freeGrantStillWorks(sys: Syscalls, kvmPath?: string): void {
  const v = vmm(sys, kvmPath);
  try {
    const vm = KvmVm.adopt(v.vmFd, { syscalls: sys, slots: { first: 100, count: 4 }, ...(kvmPath && { kvmPath }) });
    const a = vm.addSlot({ guestPhysAddr: BAR_GPA, memorySize: v.page, userspaceAddr: v.ram.address });
    expect(a).toBe(100);
    // A free id whose GPA overlaps the VMM's RAM: KVM's own EEXIST, the probe changed nothing.
    expect(
      captureError(() => vm.addSlot({ guestPhysAddr: RAM_GPA, memorySize: v.page, userspaceAddr: v.ram.address }))
    ).toMatchObject({ code: 'EEXIST' });
    // Moves and re-adds of a verified id need no probe and work as before.
    vm.moveSlot(a, BAR_GPA + 0x10_0000n);
    vm.removeSlot(a);
    expect(vm.addSlot({ guestPhysAddr: BAR_GPA, memorySize: v.page, userspaceAddr: v.ram.address })).toBe(100);
    vm.close();
    expect(v.ramSlotIntact()).toBe(true);
  } finally {
    v.close();
  }
}

describe('KvmVm.adopt argument checks', () => {
  const kernel = new FakeKernel();
  for (const fd of [1.5, Number.NaN, -1, Infinity, 2 ** 31, '3', 3n, undefined]) {
    it(`rejects vm fd ${String(fd)} with BAD_ARGUMENT before any syscall`, () => {
      const before = kernel.calls.length;
      expect(
        captureError(() => KvmVm.adopt(fd as number, { syscalls: kernel, slots: { first: 0, count: 1 } }))
      ).toMatchObject({ name: 'KvmError', code: 'BAD_ARGUMENT' });
      expect(kernel.calls.length).toBe(before);
    });
  }
  it('rejects a missing grant with BAD_ARGUMENT', () => {
    expect(captureError(() => KvmVm.adopt(3, { syscalls: kernel } as never))).toMatchObject({ code: 'BAD_ARGUMENT' });
  });
  it('addSlot rejects non-u64 values and size 0 (a delete in disguise) with BAD_ARGUMENT', () => {
    using vm = KvmVm.create({ syscalls: kernel });
    for (const region of [
      { guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0x1000n },
      { guestPhysAddr: -1n, memorySize: 0x1000n, userspaceAddr: 0x1000n },
      { guestPhysAddr: 0n, memorySize: 0x1000, userspaceAddr: 0x1000n },
      { guestPhysAddr: 1n << 64n, memorySize: 0x1000n, userspaceAddr: 0x1000n },
    ]) {
      expect(captureError(() => vm.addSlot(region as never))).toMatchObject({ code: 'BAD_ARGUMENT' });
    }
    expect(captureError(() => vm.moveSlot(0, 'x' as never))).toMatchObject({ code: 'BAD_ARGUMENT' });
  });
});

describe('KvmVm.adopt with a grant overlapping the VMM slots (fake kernel)', () => {
  it('refuses the VMM-owned id and leaves its slot alone', () => {
    const kernel = new FakeKernel();
    overlappingGrant(kernel);
    expect(kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
  });
  it('a free grant works as before', () => {
    const kernel = new FakeKernel();
    freeGrantStillWorks(kernel);
    expect(kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
  });
});

describe('KvmVm.adopt: the grant probe under fault injection (fake kernel)', () => {
  /** adopt, add two slots (probing both ids), move one, close: the VMM's slot 0 is the only thing left. */
  const handles: KvmVm[] = [];
  const lifecycle = (kernel: FakeKernel, vmFd: number, hva: bigint): void => {
    const vm = KvmVm.adopt(vmFd, { syscalls: kernel, slots: { first: 1, count: 2 } });
    handles.push(vm);
    try {
      const a = vm.addSlot({ guestPhysAddr: BAR_GPA, memorySize: 0x1000n, userspaceAddr: hva });
      vm.addSlot({ guestPhysAddr: 2n * BAR_GPA, memorySize: 0x1000n, userspaceAddr: hva });
      vm.moveSlot(a, 3n * BAR_GPA);
    } finally {
      vm.close();
    }
  };
  const setup = () => {
    const kernel = new FakeKernel();
    const v = vmm(kernel);
    return { kernel, v, baseline: kernel.live() };
  };

  it('every syscall failing in turn: a typed error, the VMM slot intact, nothing of ours left', () => {
    const reference = setup();
    const first = reference.kernel.calls.length;
    lifecycle(reference.kernel, reference.v.vmFd, reference.v.ram.address);
    const calls = reference.kernel.calls.slice(first);
    expect(calls.map((c) => c.name)).toContain('memfd_create');
    // close(2) releases the fd on Linux even when it reports an error (the fake does too) and the library
    // never retries it nor reports it from a cleanup path: a close fault has no error to assert here.
    for (const call of calls.filter((c) => c.name !== 'close')) {
      const { kernel, v, baseline } = setup();
      kernel.failAt(call.index, 4 /* EINTR */);
      const error = captureError(() => lifecycle(kernel, v.vmFd, v.ram.address));
      expect(error, `call ${call.index} ${call.name}`).toMatchObject({ code: 'EINTR' });
      // A refused delete keeps the handle open with the slot recorded: closing again gives it back.
      kernel.clearFaults();
      for (const vm of handles.splice(0)) vm.close();
      expect(kernel.live(), `call ${call.index} ${call.name}`).toEqual(baseline);
      expect(v.ramSlotIntact()).toBe(true);
      v.close();
    }
  });
});

describeKvm('KvmVm.adopt with a grant overlapping the VMM slots (real /dev/kvm)', () => {
  it('what KVM does on an id in use: another host address or size is EINVAL and changes nothing; the same ones MOVE it', () => {
    const sys = realSyscalls();
    const v = vmm(sys);
    try {
      const other = captureError(
        () => sys.setUserMemoryRegion(v.vmFd, { ...v.ramSlot, guestPhysAddr: BAR_GPA, userspaceAddr: v.ram.address + v.page })
      );
      expect(other).toMatchObject({ code: 'EINVAL' });
      expect(
        captureError(() => sys.setUserMemoryRegion(v.vmFd, { ...v.ramSlot, memorySize: 2n * v.page }))
      ).toMatchObject({ code: 'EINVAL' });
      expect(v.ramSlotIntact()).toBe(true);
      // The hazard the probe avoids: same HVA and size, another GPA, is a silent MOVE of the VMM's RAM.
      sys.setUserMemoryRegion(v.vmFd, { ...v.ramSlot, guestPhysAddr: BAR_GPA });
      expect(v.ramSlotIntact()).toBe(false);
    } finally {
      v.close();
    }
  });
  it('refuses the VMM-owned id and leaves its RAM slot where it was', () => overlappingGrant(realSyscalls()));
  it('a free grant works as before (the probe adds no visible slot)', () => freeGrantStillWorks(realSyscalls()));
});
