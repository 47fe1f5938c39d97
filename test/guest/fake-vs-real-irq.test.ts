/**
 * The fake kernel's interrupt answers must be the real kernel's: the same irqchip, GSI routing, irqfd
 * and eventfd scenarios run against the fake and against /dev/kvm, and every answer must agree.
 */
import { expect, it } from 'vitest';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { EFD_FLAGS, type Syscalls } from '../../src/sys/syscalls.js';
import { KVM_IRQ_CAP, KVM_IRQFD_FLAGS, encodeIrqRouting, encodeIrqfd, type KvmRoutingEntry } from '../../src/uapi/index.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { describeKvm } from '../helpers/kvm-required.js';

const msi = (gsi: number, data = 0x41, devid?: number): KvmRoutingEntry => ({
  gsi,
  type: 'msi',
  addressLo: 0xfee0_0000,
  addressHi: 0,
  data,
  ...(devid !== undefined && { devid })
});

function scenarios(sys: Syscalls): Record<string, string | number> {
  const kvm = sys.open('/dev/kvm', 2);
  const vm = sys.ioctl(kvm, 'KVM_CREATE_VM', 0);
  const efd = sys.eventfd(0, EFD_FLAGS.NONBLOCK);
  const efd2 = sys.eventfd(0, EFD_FLAGS.NONBLOCK);
  const memfd = sys.memfdCreate('not-an-eventfd', 0);
  const answers: Record<string, string | number> = {};
  const run = (name: string, fn: () => number | void): void => {
    try {
      const r = fn();
      answers[name] = typeof r === 'number' ? r : 'ok';
    } catch (error) {
      answers[name] = (error as { errno: number; code: string }).errno === 11 ? 'EAGAIN' : (error as { code: string }).code;
    }
  };
  const route = (entries: KvmRoutingEntry[]) => () => void sys.ioctl(vm, 'KVM_SET_GSI_ROUTING', encodeIrqRouting(entries));
  const irqfd = (fd: number, gsi: number, flags = 0) => () => void sys.ioctl(vm, 'KVM_IRQFD', encodeIrqfd({ fd, gsi, flags }));
  const signal = (fd: number) => () => void sys.write(fd, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
  const drain = (fd: number) => () => { const b = Buffer.alloc(8); sys.read(fd, b); return Number(b.readBigUInt64LE(0)); };

  for (const [name, cap] of Object.entries(KVM_IRQ_CAP)) run(`cap ${name}`, () => sys.ioctl(vm, 'KVM_CHECK_EXTENSION', cap));
  run('routing without irqchip', route([msi(40)]));
  run('irqfd without irqchip', irqfd(efd, 40));
  run('create irqchip', () => void sys.ioctl(vm, 'KVM_CREATE_IRQCHIP'));
  run('create irqchip twice', () => void sys.ioctl(vm, 'KVM_CREATE_IRQCHIP'));
  run('route one MSI', route([msi(40)]));
  run('route MSI with devid flag', route([msi(40, 0x41, 8)]));
  run('route same GSI twice as MSI', route([msi(40), msi(40, 0x42)]));
  run('route GSI 4096', route([msi(4096)]));
  run('route IOAPIC pin 24', route([{ gsi: 1, type: 'irqchip', irqchip: 2, pin: 24 }]));
  run('route PIC master pin 8', route([{ gsi: 1, type: 'irqchip', irqchip: 0, pin: 8 }]));
  run(
    'route GSI 3 to PIC and IOAPIC',
    route([{ gsi: 3, type: 'irqchip', irqchip: 0, pin: 3 }, { gsi: 3, type: 'irqchip', irqchip: 2, pin: 3 }]),
  );
  run('route MSI + default-like irqchip entries', route([{ gsi: 3, type: 'irqchip', irqchip: 2, pin: 3 }, msi(40)]));
  run('irqfd assign', irqfd(efd, 40));
  run('irqfd assign same eventfd again', irqfd(efd, 41));
  run('irqfd bad flags', irqfd(efd2, 42, 0x10));
  run('irqfd on a non-eventfd', irqfd(memfd, 42));
  run('irqfd on a closed fd', irqfd(9999, 42));
  run('signal with irqfd', signal(efd));
  run('read after irqfd consumed it', drain(efd));
  run('signal without irqfd', signal(efd2));
  run('read without irqfd', drain(efd2));
  run('read empty', drain(efd2));
  run('irqfd on a GSI without route', irqfd(efd2, 99));
  run('signal on unrouted irqfd', signal(efd2));
  run('read after unrouted irqfd', drain(efd2));
  run('deassign', irqfd(efd, 40, KVM_IRQFD_FLAGS.DEASSIGN));
  run('deassign again', irqfd(efd, 40, KVM_IRQFD_FLAGS.DEASSIGN));
  run('signal after deassign', signal(efd));
  run('read after deassign', drain(efd));
  run('pending count delivered on assign', () => { signal(efd)(); irqfd(efd, 40)(); return drain(efd)(); });
  run('empty routing table', route([]));
  for (const fd of [memfd, efd2, efd, vm, kvm]) sys.close(fd);
  return answers;
}

describeKvm('fake kernel vs real /dev/kvm: interrupts', () => {
  it('answers every irqchip, routing, irqfd and eventfd scenario the same way', () => {
    const real = scenarios(realSyscalls());
    const fake = scenarios(new FakeKernel({ pageSize: 4096 }));
    expect(fake).toEqual(real);
    expect(real).toMatchObject({
      'routing without irqchip': 'EINVAL',
      'route one MSI': 'ok',
      'irqfd assign': 'ok',
      'read after irqfd consumed it': 'EAGAIN',
      'read without irqfd': 1,
    });
  });
});
