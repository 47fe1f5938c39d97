/**
 * The fake kernel must answer the way the real one does: the same KVM slot scenarios run against the
 * fake and against /dev/kvm, and every answer (ok or errno name) must agree.
 */
import { expect, it } from 'vitest';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { PROT, type Syscalls } from '../../src/sys/syscalls.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { describeKvm } from '../helpers/kvm-required.js';

const PAGE = 0x1000n;
const A = 0x10_0000n;
const B = 0x20_0000n;

/** Runs KVM_SET_USER_MEMORY_REGION scenarios straight through Syscalls; returns each answer. */
function scenarios(sys: Syscalls): Record<string, string> {
  const kvm = sys.open('/dev/kvm', 2);
  const vm = sys.ioctl(kvm, 'KVM_CREATE_VM', 0);
  const fd = sys.memfdCreate('fake-vs-real', 0);
  sys.ftruncate(fd, 4n * PAGE);
  const mem = sys.mmap(fd, 0n, 4n * PAGE, PROT.READ | PROT.WRITE);
  const hva = mem.address;
  const answers: Record<string, string> = {};
  const set = (name: string, slot: number, gpa: bigint, size: bigint, address = hva, flags = 0): void => {
    try {
      sys.setUserMemoryRegion(vm, { slot, flags, guestPhysAddr: gpa, memorySize: size, userspaceAddr: address });
      answers[name] = 'ok';
    } catch (error) {
      answers[name] = (error as { code: string }).code;
    }
  };
  set('add', 0, A, PAGE);
  set('identical call', 0, A, PAGE);
  set('unaligned size', 1, B, 0x800n);
  set('unaligned gpa', 1, B + 0x800n, PAGE);
  set('unaligned hva', 1, B, PAGE, hva + 0x800n);
  set('overlap', 1, A, PAGE);
  set('slot beyond NR_MEMSLOTS', 40_000, B, PAGE);
  set('bad flags', 1, B, PAGE, hva, 0x100);
  set('gpa + size wraps', 1, (1n << 64n) - PAGE, 2n * PAGE);
  set('change size in place', 0, A, 2n * PAGE);
  set('change hva in place', 0, A, PAGE, hva + PAGE);
  set('toggle READONLY in place', 0, A, PAGE, hva, 2);
  set('move', 0, B, PAGE);
  set('delete', 0, B, 0n);
  set('delete empty slot', 0, B, 0n);
  set('re-add after delete', 0, A, PAGE);
  sys.munmap(mem);
  sys.close(fd);
  sys.close(vm);
  sys.close(kvm);
  return answers;
}

describeKvm('fake kernel vs real /dev/kvm', () => {
  it('answers every KVM slot scenario the same way', () => {
    const real = scenarios(realSyscalls());
    const fake = scenarios(new FakeKernel({ pageSize: 4096, nrMemslots: 32_764 }));
    expect(fake).toEqual(real);
    // And the real answers are the documented ones.
    expect(real).toMatchObject({
      add: 'ok',
      'identical call': 'ok',
      'unaligned size': 'EINVAL',
      overlap: 'EEXIST',
      move: 'ok',
      delete: 'ok',
    });
  });
});
