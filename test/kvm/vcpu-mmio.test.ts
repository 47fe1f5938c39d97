/**
 * Answering an MMIO read in place, on the real /dev/kvm: a guest load from an address no slot backs
 * exits to the VMM, which writes the value into kvm_run; the next KVM_RUN finishes the load with it.
 */
import { expect, it } from 'vitest';
import { KvmVcpu, KvmVm } from '../../src/kvm/index.js';
import { X86_REPORT_PORT, setupX86, x86ReadProgram } from '../../src/kvm/probe-x86.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { captureError } from '../helpers/capture-error.js';
import { hostMemory } from '../helpers/host-memory.js';

const sys = realSyscalls();
const PAGE = BigInt(sys.pageSize());
const CODE_GPA = 0x10_0000n;
const DEVICE_GPA = 0x1000_0000n;

describeKvm('KvmVcpu on the real /dev/kvm: a VMM answers MMIO reads', () => {
  it('the guest loads the value the VMM wrote into kvm_run (32- and 64-bit reads)', () => {
    for (const [width, answers] of [[4, [0xcafe_f00dn]], [8, [0x1122_3344n, 0x5566_7788n]]] as const) {
      using vm = KvmVm.create();
      const code = hostMemory(sys, PAGE, 'vfio-bars-code');
      try {
        new Uint8Array(code.view!).set(x86ReadProgram(DEVICE_GPA, width));
        vm.addSlot({ guestPhysAddr: CODE_GPA, memorySize: PAGE, userspaceAddr: code.address });
        using vcpu = KvmVcpu.create(vm, 0);
        setupX86(sys, vcpu.fd, CODE_GPA);
        expect(captureError(() => vcpu.answerMmioRead(1n))).toMatchObject({ code: 'NO_PENDING_READ' });
        // The x86 program reads 64 bits as two 32-bit loads: each exits, each is answered.
        for (const [word, answer] of answers.entries()) {
          const exit = vcpu.run();
          expect(exit).toEqual({
            kind: 'mmio',
            address: DEVICE_GPA + BigInt(word * 4),
            isWrite: false,
            length: 4,
            data: expect.any(BigInt) as unknown,
          });
          expect(() => vcpu.answerMmioRead(1n << 32n)).toThrow(RangeError);
          vcpu.answerMmioRead(answer);
          expect(vcpu.run()).toEqual({ kind: 'io', direction: 'out', port: X86_REPORT_PORT, size: 4, data: answer });
        }
        expect(vcpu.run()).toEqual({ kind: 'hlt' });
      } finally {
        vm.close();
        sys.munmap(code);
      }
    }
  });
});
