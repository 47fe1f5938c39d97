/**
 * x86-64 vCPU state layouts (arch/x86/include/uapi/asm/kvm.h) — only the fields the probe vCPU sets.
 */

/** struct kvm_regs: 18 u64 (rax..r15, rip, rflags). */
export const X86_REGS = { size: 144, rsp: 48, rip: 128, rflags: 136 } as const;

/** struct kvm_sregs: 8 kvm_segment (24 bytes each), gdt/idt, control registers. */
export const X86_SREGS = {
  size: 312,
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  gdt: 192,
  idt: 208,
  cr0: 224,
  cr4: 248,
  efer: 264,
} as const;

/** struct kvm_segment field offsets. */
export const X86_SEGMENT = { base: 0, limit: 8, selector: 12, type: 14, present: 15, dpl: 16, db: 17, s: 18, l: 19, g: 20, avl: 21, unusable: 22 } as const;

export interface X86Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
}

export function writeX86Segment(sregs: Buffer, at: number, seg: X86Segment): void {
  sregs.writeBigUInt64LE(seg.base, at + X86_SEGMENT.base);
  sregs.writeUInt32LE(seg.limit, at + X86_SEGMENT.limit);
  sregs.writeUInt16LE(seg.selector, at + X86_SEGMENT.selector);
  sregs.writeUInt8(seg.type, at + X86_SEGMENT.type);
  sregs.writeUInt8(seg.present, at + X86_SEGMENT.present);
  sregs.writeUInt8(seg.dpl, at + X86_SEGMENT.dpl);
  sregs.writeUInt8(seg.db, at + X86_SEGMENT.db);
  sregs.writeUInt8(seg.s, at + X86_SEGMENT.s);
  sregs.writeUInt8(seg.l, at + X86_SEGMENT.l);
  sregs.writeUInt8(seg.g, at + X86_SEGMENT.g);
  sregs.writeUInt8(0, at + X86_SEGMENT.avl);
  sregs.writeUInt8(0, at + X86_SEGMENT.unusable);
}
