/**
 * The guest of the MSI benchmark (bench/irq-cases.ts) on the real /dev/kvm: the vector arrives through the
 * library's MSI route and irqfd, the guest EOIs so the next one arrives too, and nothing arrives on the
 * vector once its route is gone (so the benchmark really measures MSI delivery). The C baseline's copy of the
 * program must be the same bytes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { realSyscalls, type GsiBlock } from 'vfio-bars';
import { LAPIC_BASE, MSI_VECTOR, MsiGuest, PORT, StandInMsixDevice, msiProgram } from '../../bench/irq-cases.js';
import { describeKvm } from '../helpers/kvm-required.js';

const sys = realSyscalls();
const ONE = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);
/** A lower-priority vector (the LAPIC delivers the highest pending vector first); its handler reports on PORT.other. */
const CONTROL_VECTOR = 0x30;
const EFD_NONBLOCK_CLOEXEC = 0o4000 | 0o2000000;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

it('the C baseline runs the same guest bytes', () => {
  const source = readFileSync(path.resolve(import.meta.dirname, '..', '..', 'bench', 'c', 'kvm-bench.c'), 'utf8');
  const setup = source.slice(source.indexOf('static void setup_msi('));
  const bytes = (name: string): number[] => {
    const match = new RegExp(`${name}\\[\\] = \\{([^}]*)\\}`).exec(setup);
    return match![1]!.split(',').map((b) => Number(b.trim()));
  };
  const { code, low } = msiProgram();
  expect(bytes('init')).toEqual([...code.subarray(0, bytes('init').length)]);
  expect(bytes('handler')).toEqual([...code.subarray(0x40, 0x40 + bytes('handler').length)]);
  expect(code[0x40 + bytes('handler').length]).toBe(0); // nothing the C copy lacks
  expect(bytes('other')).toEqual([...code.subarray(0x60, 0x60 + bytes('other').length)]);
  expect(bytes('reset')).toEqual([...code.subarray(0xff0, 0xff3)]);
  expect(low.readUInt16LE(MSI_VECTOR * 4)).toBe(0xf040);
  expect(low.readUInt16LE(CONTROL_VECTOR * 4)).toBe(0xf060);
});

describeKvm('MSI benchmark guest (real /dev/kvm)', () => {
  let guest: MsiGuest;
  let device: StandInMsixDevice;
  let control: { eventfd: number; block: GsiBlock };
  let fdsBefore: number;

  beforeEach(() => {
    fdsBefore = openFds();
    guest = MsiGuest.create(sys);
    device = StandInMsixDevice.create(sys, guest);
    control = controlVector(guest);
    guest.runUntilReady();
  });

  afterEach(() => {
    sys.close(control.eventfd); // closing an irqfd's eventfd detaches the irqfd
    guest.router.release(control.block);
    device.close();
    expect(guest.router.deviceRouteCount).toBe(0);
    guest.close();
    expect(openFds()).toBe(fdsBefore);
  });

  it('delivers the vector through its MSI route and irqfd, again and again (the handler EOIs)', () => {
    const stamps: bigint[] = [];
    const times: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      if (i > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // 20 ms apart
      times.push(process.hrtime.bigint());
      sys.write(device.eventfd, ONE);
      expect(guest.runUntilHandler()).toBe(PORT.delivered);
      stamps.push(guest.handlerTsc);
    }
    // The handler stamps its arrival with the TSC: it advances at the TSC's rate (0.5-6 GHz) between deliveries.
    const ghz = Number(stamps[2]! - stamps[0]!) / Number(times[2]! - times[0]!);
    expect(ghz).toBeGreaterThan(0.5);
    expect(ghz).toBeLessThan(6);
  });

  it('both vectors pending when the vCPU runs: the LAPIC takes the higher one first, then the other after the EOI', () => {
    sys.write(control.eventfd, ONE);
    sys.write(device.eventfd, ONE);
    expect([guest.runUntilHandler(), guest.runUntilHandler()]).toEqual([PORT.delivered, PORT.other]);
  });

  it('delivers nothing on the vector once its MSI route is removed', () => {
    guest.router.setRoute(device.msix.gsi(0)!, undefined);
    sys.write(device.eventfd, ONE);
    // A pending 0x40 would be taken before the lower-priority control vector, each time.
    for (let i = 0; i < 2; i++) {
      sys.write(control.eventfd, ONE);
      expect(guest.runUntilHandler()).toBe(PORT.other);
    }
  });
});

/** A second GSI of the guest's router, routed as an MSI to CONTROL_VECTOR, with an irqfd on a fresh eventfd. */
function controlVector(guest: MsiGuest): { eventfd: number; block: GsiBlock } {
  const block = guest.router.allocate(1);
  guest.router.setRoute(block.first, { gsi: block.first, type: 'msi', addressLo: LAPIC_BASE, addressHi: 0, data: CONTROL_VECTOR });
  const eventfd = sys.eventfd(0, EFD_NONBLOCK_CLOEXEC);
  const irqfd = Buffer.alloc(32); // struct kvm_irqfd: fd, gsi, flags, resamplefd, pad
  irqfd.writeUInt32LE(eventfd, 0);
  irqfd.writeUInt32LE(block.first, 4);
  sys.ioctl(guest.vm.fd, 'KVM_IRQFD', irqfd);
  return { eventfd, block };
}
