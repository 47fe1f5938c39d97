/**
 * KVM's VFIO pseudo-device: the library adds a device's group (container path) or device file (cdev path,
 * before the iommufd bind) and deletes it on close; against the fake kernel, and cross-checked against the
 * real /dev/kvm for what KVM answers without VFIO hardware (create, TEST flag, EBUSY, EINVAL, EBADF, ENOENT).
 */
import { describe, expect, it } from 'vitest';
import { IommuContext, KvmError, KvmVfioDevice, KvmVm, PROT, VfioDevice, realSyscalls, type Syscalls } from '../../src/index.js';
import { KVM_DEV_TYPE, KVM_DEV_VFIO, encodeCreateDevice, encodeDeviceAttr } from '../../src/uapi/index.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { captureError } from '../helpers/capture-error.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { multiSetup } from '../vfio/multi-fixtures.js';

const FN0 = '0000:00:01.0';
const FN1 = '0000:00:01.1';

describe('KvmVfioDevice with VfioDevice.open (fake kernel)', () => {
  it('container path: the group is added once for its two functions and deleted with the last; the group can be opened again', () => {
    const { kernel, options } = multiSetup();
    using vm = KvmVm.create({ syscalls: kernel, kvmPath: `${options.devRoot}/kvm` });
    using kvm = KvmVfioDevice.create(vm);
    using context = IommuContext.open(options);
    const a = VfioDevice.open(FN0, { ...options, context, kvm });
    const b = VfioDevice.open(FN1, { ...options, context, kvm });
    expect(kernel.live().kvmFiles).toBe(1);
    expect(kernel.calls.filter((c) => c.name === 'KVM_SET_DEVICE_ATTR')).toHaveLength(1);
    expect(kvm.files).toHaveLength(1);
    a.close();
    expect(kernel.live().kvmFiles).toBe(1);
    b.close();
    expect(kernel.live().kvmFiles).toBe(0);
    expect(kvm.files).toEqual([]);
    // Had KVM kept the group file, the group node would still be busy (EBUSY) here.
    VfioDevice.open(FN0, { ...options, context, kvm }).close();
  });

  it('cdev path: the device file is added before VFIO_DEVICE_BIND_IOMMUFD (kernel rule) and deleted on close', () => {
    const { kernel, options } = multiSetup(true);
    using vm = KvmVm.create({ syscalls: kernel, kvmPath: `${options.devRoot}/kvm` });
    using kvm = KvmVfioDevice.create(vm);
    using context = IommuContext.open(options);
    const from = kernel.calls.length;
    const device = VfioDevice.open(FN0, { ...options, context, kvm });
    const names = kernel.calls.slice(from).map((c) => c.name);
    expect(names).toEqual([
      'open',
      'KVM_SET_DEVICE_ATTR',
      'VFIO_DEVICE_BIND_IOMMUFD',
      'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
      'VFIO_DEVICE_FEATURE',
    ]);
    expect(kernel.sawKvmAtBind(device.fd)).toBe(true);
    expect(kernel.live().kvmFiles).toBe(1);
    device.close();
    expect(kernel.live().kvmFiles).toBe(0);
  });

  it('closing the pseudo-device first deletes what is still added; devices closed later have nothing left to delete', () => {
    const { kernel, options } = multiSetup();
    const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${options.devRoot}/kvm` });
    const kvm = KvmVfioDevice.create(vm);
    const device = VfioDevice.open(FN0, { ...options, kvm });
    kvm.close();
    expect(kernel.live().kvmFiles).toBe(0);
    expect(captureError(() => kvm.addFile(device.fd))).toMatchObject({ code: 'CLOSED' });
    device.close();
    vm.close();
    expect(kernel.live()).toMatchObject({ fds: 0, mmaps: 0, kvmFiles: 0 });
  });

  it('adopting the VMM\'s own pseudo-device: files added and deleted through it, its fd left open', () => {
    const { kernel, options } = multiSetup();
    using vm = KvmVm.create({ syscalls: kernel, kvmPath: `${options.devRoot}/kvm` });
    const own = KvmVfioDevice.create(vm); // stands in for the one the VMM made
    expect(captureError(() => KvmVfioDevice.create(vm))).toMatchObject({ code: 'EBUSY' });
    const kvm = KvmVfioDevice.adopt(own.fd, { syscalls: kernel });
    const device = VfioDevice.open(FN0, { ...options, kvm });
    expect(kernel.live().kvmFiles).toBe(1);
    device.close();
    kvm.close();
    expect(kernel.live()).toMatchObject({ kvmFiles: 0, mmaps: 1 }); // only `own`'s scratch page is left
    // Still open: KVM answers the (empty) attribute instead of EBADF.
    expect(
      () => kernel.ioctl(own.fd, 'KVM_SET_DEVICE_ATTR', Buffer.alloc(24))
    ).toThrow(expect.objectContaining({ code: 'ENXIO' }) as Error);
    own.close();
    expect(captureError(() => KvmVfioDevice.adopt(-1, { syscalls: kernel }))).toMatchObject({ code: 'BAD_ARGUMENT' });
  });

  it('one pseudo-device per VM, typed errors, and a kvm without it says so', () => {
    const kernel = new FakeKernel();
    using vm = KvmVm.create({ syscalls: kernel });
    expect(KvmVfioDevice.supported(vm)).toBe(true);
    using kvm = KvmVfioDevice.create(vm);
    const busy = captureError(() => KvmVfioDevice.create(vm));
    expect(busy).toBeInstanceOf(KvmError);
    expect(busy).toMatchObject({ code: 'EBUSY', ioctl: 'KVM_CREATE_DEVICE' });
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 31, '3']) {
      expect(captureError(() => kvm.addFile(bad as number))).toMatchObject({ code: 'BAD_ARGUMENT' });
    }
    expect(captureError(() => KvmVfioDevice.create({ fd: -3, syscalls: kernel }))).toMatchObject({ code: 'BAD_ARGUMENT' });

    const without = new FakeKernel({ kvmVfio: false });
    const baseline = without.live();
    using vm2 = KvmVm.create({ syscalls: without });
    expect(KvmVfioDevice.supported(vm2)).toBe(false);
    expect(captureError(() => KvmVfioDevice.create(vm2))).toMatchObject({ code: 'NO_VFIO_DEVICE' });
    vm2.close();
    expect(without.live()).toEqual(baseline);
  });

  it('every syscall of create() failing in turn leaves nothing behind', () => {
    const probe = new FakeKernel();
    const vm = KvmVm.create({ syscalls: probe });
    const from = probe.calls.length;
    KvmVfioDevice.create(vm).close();
    // The calls that can fail the creation (closes and unmaps only release).
    const steps = probe.calls.slice(from).filter((c) => c.name !== 'close' && c.name !== 'munmap').map((c) => c.index - from);
    expect(steps.length).toBe(4);
    for (const i of steps) {
      const kernel = new FakeKernel();
      const vm2 = KvmVm.create({ syscalls: kernel });
      const baseline = kernel.live();
      kernel.failAt(kernel.calls.length + i, 5);
      expect(captureError(() => KvmVfioDevice.create(vm2))).toBeInstanceOf(KvmError);
      expect(kernel.live(), `step ${i}`).toEqual(baseline);
      vm2.close();
    }
  });
});

/** What KVM answers for the pseudo-device, as errno names, through raw ioctls (no VFIO needed). */
function pseudoDeviceAnswers(sys: Syscalls, vmFd: number): string[] {
  const answers: string[] = [];
  const attempt = (fn: () => unknown): void => {
    try {
      fn();
      answers.push('ok');
    } catch (error) {
      answers.push((error as { code: string }).code);
    }
  };
  const memfd = sys.memfdCreate('probe', 0);
  sys.ftruncate(memfd, BigInt(sys.pageSize()));
  const scratch = sys.mmap(memfd, 0n, BigInt(sys.pageSize()), PROT.READ | PROT.WRITE);
  const fdSlot = new DataView(scratch.view!);
  const request = encodeCreateDevice(KVM_DEV_TYPE.VFIO, 1);
  attempt(() => sys.ioctl(vmFd, 'KVM_CREATE_DEVICE', request)); // TEST: nothing created
  attempt(() => sys.ioctl(vmFd, 'KVM_CREATE_DEVICE', encodeCreateDevice(0x7fff)));
  const create = encodeCreateDevice(KVM_DEV_TYPE.VFIO);
  attempt(() => sys.ioctl(vmFd, 'KVM_CREATE_DEVICE', create));
  const deviceFd = create.readUInt32LE(4);
  attempt(() => sys.ioctl(vmFd, 'KVM_CREATE_DEVICE', encodeCreateDevice(KVM_DEV_TYPE.VFIO)));
  const setAttr = (attr: number, fd: number, group: number = KVM_DEV_VFIO.FILE): void => {
    fdSlot.setInt32(0, fd, true);
    sys.ioctl(deviceFd, 'KVM_SET_DEVICE_ATTR', encodeDeviceAttr({ flags: 0, group, attr: BigInt(attr), addr: scratch.address }));
  };
  attempt(() => setAttr(KVM_DEV_VFIO.FILE_ADD, memfd)); // not a VFIO file
  attempt(() => setAttr(KVM_DEV_VFIO.FILE_ADD, 0x7fff_fff0)); // not an open fd
  attempt(() => setAttr(KVM_DEV_VFIO.FILE_DEL, memfd)); // never added
  attempt(() => setAttr(KVM_DEV_VFIO.FILE_ADD, memfd, 77)); // unknown group
  sys.close(deviceFd);
  sys.munmap(scratch);
  sys.close(memfd);
  return answers;
}

describeKvm('KvmVfioDevice on the real /dev/kvm', () => {
  it('this kvm offers the VFIO pseudo-device (KVM_CREATE_DEVICE_TEST), and the class creates and closes it', () => {
    using vm = KvmVm.create();
    expect(KvmVfioDevice.supported(vm)).toBe(true);
    const kvm = KvmVfioDevice.create(vm);
    expect(kvm.fd).toBeGreaterThan(2);
    const notVfio = captureError(() => kvm.addFile(vm.kvmFd));
    expect(notVfio).toMatchObject({ code: 'EINVAL', ioctl: expect.stringContaining('KVM_SET_DEVICE_ATTR') as string });
    expect(kvm.files).toEqual([]);
    kvm.close();
    kvm.close();
  });

  it('the fake answers the pseudo-device ioctls exactly as the real kernel does', () => {
    const real = realSyscalls();
    using realVm = KvmVm.create({ syscalls: real });
    const fake = new FakeKernel();
    using fakeVm = KvmVm.create({ syscalls: fake });
    const fromReal = pseudoDeviceAnswers(real, realVm.fd);
    expect(fromReal).toEqual(['ok', 'ENODEV', 'ok', 'EBUSY', 'EINVAL', 'EBADF', 'ENOENT', 'ENXIO']);
    expect(pseudoDeviceAnswers(fake, fakeVm.fd)).toEqual(fromReal);
  });
});
