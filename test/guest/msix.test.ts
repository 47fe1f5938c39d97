import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { GsiRouter, PassthroughDevice, x86DefaultIrqchipRoutes, type InterruptOptions, type MsixMessage } from '../../src/guest/index.js';
import { KvmVm } from '../../src/kvm/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import { KVM_MSI_VALID_DEVID } from '../../src/uapi/index.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { qemuNvme } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { qemuNvmeConfigSpace } from '../vfio/fixtures.js';
import { FakeBarHost } from './fake-host.js';
import { fakeDevice } from './fake-device.js';

const GPA = 0x80_0000_0000n;
const TABLE = GPA + 0x1_0000n; // relocated (64 KiB pages)
const PBA = GPA + 0x1_1000n;
const GRANT = { first: 64, count: 256 };
const VMM_ROUTES = x86DefaultIrqchipRoutes();
const MSI_ADDRESS = 0xfee0_0000;

const withIrqFlags = (flags: number): DeviceDescription => ({
  ...qemuNvme,
  irqs: qemuNvme.irqs.map((i) => (i.index === 2 ? { ...i, flags } : i)),
});

function setup(description: DeviceDescription, interrupts: (vm: KvmVm) => InterruptOptions | undefined) {
  const kernel = new FakeKernel({ pageSize: 0x1_0000, device: description, config: qemuNvmeConfigSpace() });
  const vm = KvmVm.create({ syscalls: kernel });
  kernel.ioctl(vm.fd, 'KVM_CREATE_IRQCHIP');
  const { handle } = fakeDevice(description, qemuNvmeConfigSpace(), 0x1_0000, kernel);
  const host = new FakeBarHost(planBarMappings(description, { pageSize: 0x1_0000, barAddresses: { 0: GPA } }));
  const options = interrupts(vm);
  const device = new PassthroughDevice(handle, host, vm, { ...(options && { interrupts: options }) });
  const mmio32 = (gpa: bigint, value: number): void => {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value, true);
    expect(device.handleMmio(gpa, data, true)).toBe(true);
  };
  const guest = {
    program: (v: number, data: number, masked: boolean): void => {
      mmio32(TABLE + BigInt(v * 16), MSI_ADDRESS);
      mmio32(TABLE + BigInt(v * 16) + 4n, 0);
      mmio32(TABLE + BigInt(v * 16) + 8n, data);
      mmio32(TABLE + BigInt(v * 16) + 12n, masked ? 1 : 0);
    },
    mask: (v: number, masked: boolean): void => mmio32(TABLE + BigInt(v * 16) + 12n, masked ? 1 : 0),
    control: (enable: boolean, functionMask: boolean): void => device.configWrite(
      0x42,
      2,
      (enable ? 0x8000 : 0) | (functionMask ? 0x4000 : 0),
    ),
    pba: (): number => {
      const data = new Uint8Array(8);
      device.handleMmio(PBA, data, false);
      return new DataView(data.buffer).getUint32(0, true);
    },
  };
  const deviceRoutes = (): { gsi: number; u: number[] }[] => kernel.irq.routesOf(vm.fd).filter(
    (r) => r.gsi >= GRANT.first && r.gsi < GRANT.first + GRANT.count
  ).map(({ gsi, u }) => ({ gsi, u }));
  return { kernel, vm, handle, device, guest, deviceRoutes };
}

const irqfdMode = (vm: KvmVm): InterruptOptions => ({ mode: 'irqfd', router: new GsiRouter(vm, { grant: GRANT, vmmRoutes: VMM_ROUTES }) });

describe('MSI-X through VFIO_DEVICE_SET_IRQS, GSI routes and irqfds (fake kernel)', () => {
  it('enables vectors as the guest unmasks them, growing under NORESIZE by disable + re-enable, and delivers through KVM', () => {
    const { kernel, vm, handle, device, guest, deviceRoutes } = setup(withIrqFlags(0x9), irqfdMode);
    guest.program(0, 0x41, false);
    expect(kernel.calls.some((c) => c.name === 'VFIO_DEVICE_SET_IRQS')).toBe(false); // MSI-X still disabled
    guest.control(true, false);
    expect(kernel.irq.msixOf(handle.fd)?.count).toBe(1);
    expect(deviceRoutes()).toEqual([{ gsi: 64, u: [MSI_ADDRESS, 0, 0x41, 0] }]);
    expect(kernel.irq.routesOf(vm.fd)).toHaveLength(VMM_ROUTES.length + 1); // the VMM's routes are kept
    expect(kernel.irq.raiseMsix(handle.fd, 0)).toBe(true);
    expect(kernel.irq.delivered).toEqual([{ vmFd: vm.fd, gsi: 64, addressLo: MSI_ADDRESS, addressHi: 0, data: 0x41 }]);

    const before = kernel.calls.length;
    guest.program(3, 0x44, false);
    expect(kernel.calls.slice(before).map((c) => c.name)).toEqual([
      'eventfd', 'eventfd', 'eventfd', 'VFIO_DEVICE_SET_IRQS', 'VFIO_DEVICE_SET_IRQS', 'read', 'KVM_SET_GSI_ROUTING', 'KVM_IRQFD',
    ]);
    expect(kernel.irq.msixOf(handle.fd)?.count).toBe(4);
    expect([...kernel.irq.msixOf(handle.fd)!.triggers.keys()]).toEqual([0, 1, 2, 3]);
    kernel.irq.raiseMsix(handle.fd, 3);
    expect(kernel.irq.delivered.at(-1)).toMatchObject({ gsi: 67, data: 0x44 });
    expect(device.msix?.eventfd(3)).toBe(kernel.irq.msixOf(handle.fd)!.triggers.get(3));
  });

  it('without NORESIZE, adds vectors with one SET_IRQS for the new range', () => {
    const { kernel, handle, guest } = setup(withIrqFlags(0x1), irqfdMode);
    guest.program(0, 0x41, false);
    guest.control(true, false);
    guest.program(5, 0x46, false);
    expect(kernel.calls.filter((c) => c.name === 'VFIO_DEVICE_SET_IRQS')).toHaveLength(2);
    expect(kernel.irq.msixOf(handle.fd)?.count).toBe(6);
  });

  it('a masked vector detaches its irqfd; its signals show in the PBA (with the device\'s own bits) and arrive on unmask', () => {
    const { kernel, vm, handle, guest } = setup(withIrqFlags(0x9), irqfdMode);
    kernel.regions.bytes(0).writeUInt32LE(0b10, 0x3000); // the device's real PBA: vector 1 pending
    guest.program(0, 0x41, false);
    guest.program(3, 0x44, false);
    guest.control(true, false);
    guest.mask(3, true);
    expect([...kernel.irq.irqfdsOf(vm.fd).values()]).toEqual([64]);
    kernel.irq.raiseMsix(handle.fd, 3);
    expect(kernel.irq.delivered).toEqual([]);
    expect(guest.pba()).toBe(0b1010);
    expect(guest.pba()).toBe(0b1010); // still pending: reading does not clear it
    guest.mask(3, false);
    expect(kernel.irq.delivered).toEqual([{ vmFd: vm.fd, gsi: 67, addressLo: MSI_ADDRESS, addressHi: 0, data: 0x44 }]);
    expect(guest.pba()).toBe(0b10);

    // Function mask: everything held, then delivered on unmask (KVM picks up the eventfd's count at irqfd assign).
    guest.control(true, true);
    expect(kernel.irq.irqfdsOf(vm.fd).size).toBe(0);
    kernel.irq.raiseMsix(handle.fd, 0);
    expect(kernel.irq.delivered).toHaveLength(1);
    guest.control(true, false);
    expect(kernel.irq.delivered.at(-1)).toMatchObject({ gsi: 64, data: 0x41 });
    expect(kernel.irq.delivered).toHaveLength(2);
  });

  it('a message changed while unmasked updates the route', () => {
    const { guest, deviceRoutes } = setup(withIrqFlags(0x9), irqfdMode);
    guest.program(0, 0x41, false);
    guest.control(true, false);
    guest.program(0, 0x51, false);
    expect(deviceRoutes()).toEqual([{ gsi: 64, u: [MSI_ADDRESS, 0, 0x51, 0] }]);
  });

  it('disable releases triggers, routes, irqfds and eventfds; the VMM routes stay', () => {
    const { kernel, vm, handle, device, guest, deviceRoutes } = setup(withIrqFlags(0x9), irqfdMode);
    guest.program(0, 0x41, false);
    guest.program(2, 0x43, false);
    guest.control(true, false);
    expect(kernel.irq.live()).toMatchObject({ eventfds: 3, irqfds: 2, msixEnabled: 1 });
    guest.control(false, false);
    expect(kernel.irq.live()).toMatchObject({ eventfds: 0, irqfds: 0, msixEnabled: 0 });
    expect(deviceRoutes()).toEqual([]);
    expect(kernel.irq.routesOf(vm.fd)).toHaveLength(VMM_ROUTES.length);
    expect(device.configRead(0x42, 2)).toBe(0x0040);
    guest.control(true, false); // enable again: same GSIs
    expect(deviceRoutes().map((r) => r.gsi)).toEqual([64, 66]);
    device.close();
    expect(kernel.irq.live()).toMatchObject({ eventfds: 0, irqfds: 0, msixEnabled: 0 });
    expect(kernel.irq.msixOf(handle.fd)).toBeUndefined();
    expect(() => guest.control(true, false)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    expect(() => device.handleMmio(TABLE, new Uint8Array(4), false)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    device.close(); // idempotent
  });

  it('arm64 ITS: routes carry the requester id as devid (KVM_MSI_VALID_DEVID)', () => {
    const { kernel, vm, handle, guest } = setup(withIrqFlags(0x9), () => ({ mode: 'irqfd', gsis: GRANT, devid: 0x0008 }));
    guest.program(0, 0x41, false);
    guest.control(true, false);
    expect(kernel.irq.routesOf(vm.fd)).toEqual([{ gsi: 64, type: 2, flags: KVM_MSI_VALID_DEVID, u: [MSI_ADDRESS, 0, 0x41, 0x0008] }]);
    kernel.irq.raiseMsix(handle.fd, 0);
    expect(kernel.irq.delivered).toEqual([{ vmFd: vm.fd, gsi: 64, addressLo: MSI_ADDRESS, addressHi: 0, data: 0x41, devid: 0x0008 }]);
  });

  it("'callback' delivery: poll() hands unmasked vectors to JavaScript, masked ones wait in the PBA", () => {
    const got: [number, MsixMessage][] = [];
    const { kernel, handle, device, guest } = setup(withIrqFlags(0x9), () => ({ mode: 'callback', onVector: (v, m) => got.push([v, m]) }));
    guest.program(0, 0x41, false);
    guest.program(1, 0x42, true);
    guest.control(true, false);
    expect(kernel.calls.some((c) => c.name === 'KVM_IRQFD' || c.name === 'KVM_SET_GSI_ROUTING')).toBe(false);
    kernel.irq.raiseMsix(handle.fd, 0);
    expect(device.pollInterrupts()).toBe(1);
    expect(got).toEqual([[0, { addressLo: MSI_ADDRESS, addressHi: 0, data: 0x41 }]]);
    guest.program(1, 0x42, true); // make sure vector 1 has an eventfd (enabled count grows on unmask only)
    guest.mask(1, false);
    guest.mask(1, true);
    kernel.irq.raiseMsix(handle.fd, 1);
    expect(device.pollInterrupts()).toBe(0);
    expect(guest.pba()).toBe(0b10);
    guest.mask(1, false);
    expect(got.at(-1)).toEqual([1, { addressLo: MSI_ADDRESS, addressHi: 0, data: 0x42 }]);
    device.close();
    expect(kernel.irq.live()).toMatchObject({ eventfds: 0, msixEnabled: 0 });
  });

  it('GsiRouter: blocks from the grant, exhaustion, VMM routes outside the grant, a refused table rolls back', () => {
    const kernel = new FakeKernel();
    const vm = KvmVm.create({ syscalls: kernel });
    expect(() => new GsiRouter(vm, { grant: { first: 4000, count: 200 } })).toThrow(expect.objectContaining({ code: 'BAD_GSI_RANGE' }));
    expect(
      () => new GsiRouter(vm, { grant: { first: 0, count: 32 }, vmmRoutes: VMM_ROUTES })
    ).toThrow(expect.objectContaining({ code: 'BAD_GSI_RANGE' }));
    const router = new GsiRouter(vm, { grant: { first: 100, count: 10 } });
    const a = router.allocate(4);
    const b = router.allocate(6);
    expect([a.first, b.first]).toEqual([100, 104]);
    expect(() => router.allocate(1)).toThrow(expect.objectContaining({ code: 'GSI_EXHAUSTED' }));
    // No irqchip yet: KVM refuses routing (EINVAL) and the router keeps its previous state.
    expect(
      () => router.setRoute(100, { gsi: 100, type: 'msi', addressLo: MSI_ADDRESS, addressHi: 0, data: 1 })
    ).toThrow(expect.objectContaining({ code: 'EINVAL', ioctl: 'KVM_SET_GSI_ROUTING' }));
    expect(router.route(100)).toBeUndefined();
    kernel.ioctl(vm.fd, 'KVM_CREATE_IRQCHIP');
    router.setRoute(100, { gsi: 100, type: 'msi', addressLo: MSI_ADDRESS, addressHi: 0, data: 1 });
    expect(() => router.setRoute(99, undefined)).toThrow(expect.objectContaining({ code: 'GSI_NOT_ALLOCATED' }));
    router.setVmmRoutes([{ gsi: 5, type: 'irqchip', irqchip: 2, pin: 5 }]); // the VMM's own routes change at run time
    expect(kernel.irq.routesOf(vm.fd).map((r) => r.gsi)).toEqual([5, 100]);
    expect(
      () => router.setVmmRoutes([{ gsi: 105, type: 'irqchip', irqchip: 2, pin: 5 }])
    ).toThrow(expect.objectContaining({ code: 'BAD_GSI_RANGE' }));
    router.release(a);
    expect(kernel.irq.routesOf(vm.fd).map((r) => r.gsi)).toEqual([5]);
    router.setVmmRoutes([]);
    expect(router.allocate(3).first).toBe(100);
  });
});

describe('MSI-X fault injection', () => {
  it('failing every syscall of a guest session in turn: a typed error, and nothing left after close', () => {
    const session = (failAt: number | undefined) => {
      const s = setup(withIrqFlags(0x9), irqfdMode);
      const first = s.kernel.calls.length;
      if (failAt !== undefined) s.kernel.failAt(first + failAt, constants.errno.EIO);
      const errors: unknown[] = [];
      const step = (fn: () => void): void => {
        try {
          fn();
        } catch (error) {
          errors.push(error);
        }
      };
      step(() => s.guest.program(0, 0x41, false));
      step(() => s.guest.control(true, false));
      step(() => s.guest.program(3, 0x44, false));
      step(() => s.guest.mask(3, true));
      step(() => s.kernel.irq.raiseMsix(s.handle.fd, 3));
      step(() => s.guest.pba());
      step(() => s.guest.mask(3, false));
      step(() => s.guest.control(true, true));
      step(() => s.guest.control(true, false));
      step(() => s.guest.control(false, false));
      step(() => s.guest.control(true, false));
      const calls = s.kernel.calls.length - first;
      const names = s.kernel.calls.slice(first).map((c) => c.name);
      s.kernel.clearFaults();
      step(() => s.device.close());
      step(() => s.device.close());
      return { ...s, errors, calls, names };
    };
    const clean = session(undefined);
    expect(clean.errors).toEqual([]);
    expect(clean.calls).toBeGreaterThan(20);
    const names = clean.names;
    for (let i = 0; i < clean.calls; i++) {
      // close(2) releases the fd even when it reports an error; the fake's injected close failure would not.
      if (names[i] === 'close') continue;
      const s = session(i);
      const name = s.kernel.calls[s.kernel.calls.length - 1]?.name;
      for (const error of s.errors) expect(error, `call ${i}`).toHaveProperty('code');
      expect(s.errors.length, `call ${i} (${name}) failed without an error`).toBeGreaterThan(0);
      expect(s.kernel.irq.live(), `leak after failing call ${i}`).toMatchObject({ eventfds: 0, irqfds: 0, msixEnabled: 0 });
      expect(s.deviceRoutes(), `routes left after failing call ${i}`).toEqual([]);
    }
  });
});
