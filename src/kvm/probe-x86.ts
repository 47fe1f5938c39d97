/**
 * x86-64 probe program: flat 32-bit protected mode (no paging), set up directly through KVM_SET_SREGS
 * (no GDT needed: KVM loads the descriptor caches we give it). The program loads 32 bits from a guest
 * physical address and reports them with `out 0x10, eax`, so the value comes back as an I/O exit.
 */
import { X86_REGS, X86_SREGS, writeX86Segment, type X86Segment } from '../uapi/index.js';
import type { Syscalls } from '../sys/syscalls.js';

export const X86_REPORT_PORT = 0x10;

const FLAT = { base: 0n, limit: 0xffff_ffff, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1 } as const;
const CODE_SEGMENT: X86Segment = { ...FLAT, selector: 0x08, type: 0xb }; // execute/read, accessed
const DATA_SEGMENT: X86Segment = { ...FLAT, selector: 0x10, type: 0x3 }; // read/write, accessed
const CR0_PE = 1n;

/** Enters flat protected mode with rip = `entry`. */
export function setupX86(sys: Syscalls, vcpuFd: number, entry: bigint): void {
  const sregs = Buffer.alloc(X86_SREGS.size);
  sys.ioctl(vcpuFd, 'KVM_GET_SREGS', sregs);
  writeX86Segment(sregs, X86_SREGS.cs, CODE_SEGMENT);
  for (const at of [X86_SREGS.ds, X86_SREGS.es, X86_SREGS.fs, X86_SREGS.gs, X86_SREGS.ss]) writeX86Segment(sregs, at, DATA_SEGMENT);
  sregs.writeBigUInt64LE(sregs.readBigUInt64LE(X86_SREGS.cr0) | CR0_PE, X86_SREGS.cr0);
  sys.ioctl(vcpuFd, 'KVM_SET_SREGS', sregs);

  const regs = Buffer.alloc(X86_REGS.size);
  regs.writeBigUInt64LE(entry, X86_REGS.rip);
  regs.writeBigUInt64LE(2n, X86_REGS.rflags); // bit 1 is reserved and must be set
  sys.ioctl(vcpuFd, 'KVM_SET_REGS', regs);
}

/**
 * `mov eax, [addr]` (A1 moffs32) then `out 0x10, eax` (E7 10), once per 32-bit word, then `hlt` (F4).
 * A width-8 read is two words, low first.
 */
export function x86ReadProgram(address: bigint, width: 4 | 8): Buffer {
  if (address + BigInt(width) > 0x1_0000_0000n) throw new RangeError('the x86 probe reads below 4 GiB only');
  const words = width / 4;
  const code = Buffer.alloc(words * 7 + 1);
  for (let i = 0; i < words; i++) {
    const at = i * 7;
    code[at] = 0xa1;
    code.writeUInt32LE(Number(address) + i * 4, at + 1);
    code[at + 5] = 0xe7;
    code[at + 6] = X86_REPORT_PORT;
  }
  code[words * 7] = 0xf4;
  return code;
}
