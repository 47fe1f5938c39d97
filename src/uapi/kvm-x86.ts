/**
 * x86-64 vCPU state layouts (arch/x86/include/uapi/asm/kvm.h) — only the fields the probe vCPU sets.
 */
import { defineStruct, writeStruct } from './layout.js';

const u64 = (offset: number) => ({ offset, type: 'u64' }) as const;
const u8 = (offset: number) => ({ offset, type: 'u8' }) as const;

/** struct kvm_regs: 18 u64 (rax..r15, rip, rflags); the table lists those the library sets. */
export const KVM_REGS = defineStruct({
  name: 'kvm_regs', size: 144, headers: 'x86_64', fields: { rsp: u64(48), rip: u64(128), rflags: u64(136) },
});

/** struct kvm_sregs: 8 kvm_segment (24 bytes each), gdt/idt, then control registers. */
export const KVM_SREGS = defineStruct({
  name: 'kvm_sregs', size: 312, headers: 'x86_64', fields: { cr0: u64(224), cr4: u64(248), efer: u64(264) },
});

/** struct kvm_segment. */
export const KVM_SEGMENT = defineStruct({
  name: 'kvm_segment', size: 24, headers: 'x86_64',
  fields: {
    base: u64(0), limit: { offset: 8, type: 'u32' }, selector: { offset: 12, type: 'u16' }, type: u8(14), present: u8(15),
    dpl: u8(16), db: u8(17), s: u8(18), l: u8(19), g: u8(20), avl: u8(21), unusable: u8(22),
  },
});

/** kvm_regs offsets the probe vCPU writes. */
export const X86_REGS = {
  size: KVM_REGS.size,
  rsp: KVM_REGS.fields.rsp.offset,
  rip: KVM_REGS.fields.rip.offset,
  rflags: KVM_REGS.fields.rflags.offset,
} as const;

/** kvm_sregs offsets: the segments and descriptor tables (nested structs, checked by the ABI test by name) and the control registers. */
export const X86_SREGS = {
  size: KVM_SREGS.size,
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  gdt: 192,
  idt: 208,
  cr0: KVM_SREGS.fields.cr0.offset,
  cr4: KVM_SREGS.fields.cr4.offset,
  efer: KVM_SREGS.fields.efer.offset,
} as const;

/** struct kvm_segment field offsets (from the KVM_SEGMENT table). */
export const X86_SEGMENT = Object.fromEntries(Object.entries(KVM_SEGMENT.fields).map(([name, spec]) => [name, spec.offset])) as {
  readonly [K in keyof typeof KVM_SEGMENT.fields]: number;
};

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

/**
 * Writes one kvm_segment into a kvm_sregs buffer at byte `at` (avl and unusable cleared).
 * @throws RangeError when a value does not fit its field.
 */
export function writeX86Segment(sregs: Buffer, at: number, seg: X86Segment): void {
  writeStruct(sregs, KVM_SEGMENT, { ...seg, avl: 0, unusable: 0 }, at);
}
