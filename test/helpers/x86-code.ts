/** x86 32-bit machine-code builders for the small guest programs the real-KVM tests run. */
import type { HostMapping, KvmVm } from '../../src/index.js';
import { hostMemory } from './host-memory.js';

/** `v` as the four little-endian bytes of an imm32 or disp32. */
export function u32(v: number): number[] {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return [...b];
}

/** Instructions, each as its bytes (flat 32-bit protected mode). */
export const x86 = {
  /** mov dword [address], value */
  store: (address: bigint, value: number): number[] => [0xc7, 0x05, ...u32(Number(address)), ...u32(value)],
  /** mov eax, [address] */
  load: (address: bigint): number[] => [0xa1, ...u32(Number(address))],
  /** out port, eax */
  out: (port: number): number[] => [0xe7, port],
  hlt: [0xf4],
};

/** One page of guest code: a memfd page registered as a slot at `gpa`; write the program into `code`. */
export function codePage(vm: KvmVm, gpa: bigint): { page: HostMapping; code: Uint8Array } {
  const page = hostMemory(vm.syscalls, 0x1000n, 'guest-code');
  vm.addSlot({ guestPhysAddr: gpa, memorySize: 0x1000n, userspaceAddr: page.address });
  return { page, code: new Uint8Array(page.view!) };
}
