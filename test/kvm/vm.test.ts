import { afterEach, beforeEach, expect, it } from 'vitest';
import { KvmError, KvmVm, GuestMemoryProbe } from '../../src/kvm/index.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import type { HostMapping } from '../../src/sys/syscalls.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { captureError } from '../helpers/capture-error.js';
import { hostMemory } from '../helpers/host-memory.js';

const sys = realSyscalls();
const PAGE = BigInt(sys.pageSize());


describeKvm('KvmVm on the real /dev/kvm', () => {
  let vm: KvmVm;
  let memory: HostMapping;

  beforeEach(() => {
    vm = KvmVm.create();
    memory = hostMemory(sys, 4n * PAGE);
  });
  afterEach(() => {
    vm.close();
    sys.munmap(memory);
  });

  it('reports the slot limit and capabilities', () => {
    expect(vm.maxMemorySlots).toBeGreaterThanOrEqual(509);
    expect(vm.readonlyMemSupported).toBe(true);
  });

  it('registers a page-multiple slot', () => {
    const id = vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: 2n * PAGE, userspaceAddr: memory.address });
    expect(id).toBe(0);
    expect(vm.slotCount).toBe(1);
    expect(vm.slot(id)).toMatchObject({ guestPhysAddr: 0x10_0000n, memorySize: 2n * PAGE });
  });

  it('answers EINVAL for a 0x800-byte slot, with the slot, GPA and size in the error, and frees the id', () => {
    const error = captureError(() => vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: 0x800n, userspaceAddr: memory.address }));
    expect(error).toBeInstanceOf(KvmError);
    expect(error).toMatchObject({
      code: 'EINVAL',
      errno: 22,
      ioctl: 'KVM_SET_USER_MEMORY_REGION',
      slot: 0,
      guestPhysAddr: 0x10_0000n,
      memorySize: 0x800n,
    });
    expect((error as KvmError).message).toContain('size 0x800');
    expect(vm.slotCount).toBe(0);
    expect(vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address })).toBe(0);
  });

  it('answers EINVAL for an unaligned GPA and an unaligned host address', () => {
    expect(
      captureError(() => vm.addSlot({ guestPhysAddr: 0x10_0800n, memorySize: PAGE, userspaceAddr: memory.address }))
    ).toMatchObject({ code: 'EINVAL' });
    expect(
      captureError(() => vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address + 0x800n }))
    ).toMatchObject({ code: 'EINVAL' });
  });

  it('answers EEXIST for an overlapping slot', () => {
    vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: 2n * PAGE, userspaceAddr: memory.address });
    const error = captureError(
      () => vm.addSlot({ guestPhysAddr: 0x10_0000n + PAGE, memorySize: 2n * PAGE, userspaceAddr: memory.address })
    );
    expect(error).toMatchObject({ code: 'EEXIST', slot: 1 });
    expect(vm.slotCount).toBe(1);
  });

  it('deletes a slot and reuses its id', () => {
    const a = vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address });
    const b = vm.addSlot({ guestPhysAddr: 0x20_0000n, memorySize: PAGE, userspaceAddr: memory.address });
    vm.removeSlot(a);
    expect(vm.slot(a)).toBeUndefined();
    // The freed GPA range is free in KVM too: re-adding there succeeds and takes the freed id.
    expect(vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address })).toBe(a);
    expect(b).toBe(1);
    expect(captureError(() => vm.removeSlot(99))).toMatchObject({ code: 'NO_SUCH_SLOT' });
  });

  it('exhausts every slot id with a clear error and nothing half-registered', () => {
    const ids: number[] = [];
    for (let i = 0; i < vm.maxMemorySlots; i++) {
      ids.push(vm.addSlot({ guestPhysAddr: 0x1_0000_0000n + BigInt(i) * PAGE, memorySize: PAGE, userspaceAddr: memory.address }));
    }
    expect(vm.slotCount).toBe(vm.maxMemorySlots);
    const error = captureError(() => vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address }));
    expect(error).toMatchObject({ code: 'SLOTS_EXHAUSTED' });
    expect((error as KvmError).message).toContain(`all ${vm.maxMemorySlots} in use`);
    for (const id of ids) vm.removeSlot(id);
    expect(vm.slotCount).toBe(0);
    // Every GPA is free again in the kernel, not just in our table.
    expect(vm.addSlot({ guestPhysAddr: 0x1_0000_0000n, memorySize: PAGE, userspaceAddr: memory.address })).toBeTypeOf('number');
  });

  it('a vCPU reads slot memory; an unbacked GPA exits as MMIO; moveSlot changes where it appears', () => {
    new DataView(memory.view!).setUint32(0x10, 0xcafe_f00d, true);
    new DataView(memory.view!).setUint32(0x14, 0x1234_5678, true);
    const id = vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address });
    using probe = GuestMemoryProbe.create(vm);
    expect(probe.read(0x10_0010n)).toEqual({ kind: 'value', value: 0xcafe_f00dn });
    expect(probe.read(0x10_0010n, 8)).toEqual({ kind: 'value', value: 0x1234_5678_cafe_f00dn });
    vm.moveSlot(id, 0x40_0000n);
    expect(vm.slot(id)?.guestPhysAddr).toBe(0x40_0000n);
    expect(probe.read(0x40_0010n)).toEqual({ kind: 'value', value: 0xcafe_f00dn });
    expect(probe.read(0x10_0010n)).toEqual({ kind: 'mmio', address: 0x10_0010n, isWrite: false });
  });

  it('a failed move leaves the slot where it was', () => {
    const a = vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address });
    vm.addSlot({ guestPhysAddr: 0x20_0000n, memorySize: PAGE, userspaceAddr: memory.address });
    expect(captureError(() => vm.moveSlot(a, 0x20_0000n))).toMatchObject({ code: 'EEXIST', slot: a });
    expect(vm.slot(a)?.guestPhysAddr).toBe(0x10_0000n);
    expect(captureError(() => vm.moveSlot(a, 0x30_0800n))).toMatchObject({ code: 'EINVAL' });
    expect(vm.slot(a)?.guestPhysAddr).toBe(0x10_0000n);
  });

  it('close is idempotent and later calls fail clearly', () => {
    vm.close();
    vm.close();
    expect(
      captureError(() => vm.addSlot({ guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: memory.address }))
    ).toMatchObject({ code: 'CLOSED' });
  });
});

describeKvm('KvmVm.adopt: inside a VM the VMM owns', () => {
  it('uses only the granted slot ids, coexists with the VMM slots, and gives back exactly its own on close', () => {
    const kvm = sys.open('/dev/kvm', 2);
    const vmFd = sys.ioctl(kvm, 'KVM_CREATE_VM', 0);
    const memory = hostMemory(sys, 4n * PAGE);
    try {
      // The VMM's own RAM slot 0.
      sys.setUserMemoryRegion(vmFd, { slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: memory.address });
      const vm = KvmVm.adopt(vmFd, { slots: { first: 100, count: 2 } });
      expect(vm.slotRange).toEqual({ first: 100, count: 2 });
      const a = vm.addSlot({ guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address });
      // The VMM's slot is untouched by ours: overlapping it is the kernel's EEXIST.
      expect(
        captureError(() => vm.addSlot({ guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: memory.address }))
      ).toMatchObject({ code: 'EEXIST', slot: 101 });
      const b = vm.addSlot({ guestPhysAddr: 0x20_0000n, memorySize: PAGE, userspaceAddr: memory.address });
      expect([a, b]).toEqual([100, 101]);
      expect(
        captureError(() => vm.addSlot({ guestPhysAddr: 0x30_0000n, memorySize: PAGE, userspaceAddr: memory.address }))
      ).toMatchObject({ code: 'SLOTS_EXHAUSTED' });
      vm.close();
      // Our slots are gone (their GPAs are free again), the VMM's slot 0 and its VM fd are not.
      sys.setUserMemoryRegion(vmFd, { slot: 5, flags: 0, guestPhysAddr: 0x10_0000n, memorySize: PAGE, userspaceAddr: memory.address });
      expect(
        captureError(
          () => sys.setUserMemoryRegion(vmFd, { slot: 6, flags: 0, guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: memory.address })
        )
      ).toMatchObject({ code: 'EEXIST' });
      expect(
        () => KvmVm.adopt(vmFd, { slots: { first: 32_760, count: 10 } })
      ).toThrow(expect.objectContaining({ code: 'BAD_SLOT_RANGE' }) as Error);
    } finally {
      sys.close(vmFd);
      sys.close(kvm);
      sys.munmap(memory);
    }
  });
});
