import { describe, expect, it } from 'vitest';
import {
  KVM_SEGMENT, KVM_VCPU_INIT, STRUCT_LAYOUTS, VFIO_REGION_INFO, decodeStruct, defineStruct, encodeStruct, writeStruct,
} from '../../src/uapi/index.js';

describe('layout tables', () => {
  it('every table is naturally aligned, inside its size, and named once', () => {
    const names = STRUCT_LAYOUTS.map((l) => l.name);
    expect(new Set(names).size).toBe(names.length);
    for (const layout of STRUCT_LAYOUTS) expect(() => defineStruct(layout)).not.toThrow();
  });
  it('rejects a misaligned or overlong field when declared', () => {
    expect(() => defineStruct({ name: 't', size: 8, headers: 'common', fields: { a: { offset: 2, type: 'u32' } } })).toThrow(RangeError);
    expect(() => defineStruct({ name: 't', size: 8, headers: 'common', fields: { a: { offset: 4, type: 'u64' } } })).toThrow(RangeError);
  });
  it('range-checks every field type instead of wrapping', () => {
    const seg = { base: 0n, limit: 0, selector: 0, type: 0, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0 };
    expect(() => encodeStruct(KVM_SEGMENT, { ...seg, type: 256 })).toThrow(RangeError);
    expect(() => encodeStruct(KVM_SEGMENT, { ...seg, selector: 0x1_0000 })).toThrow(RangeError);
    expect(() => encodeStruct(KVM_SEGMENT, { ...seg, limit: -1 })).toThrow(RangeError);
    expect(() => encodeStruct(KVM_SEGMENT, { ...seg, base: 1n << 64n })).toThrow(RangeError);
    expect(() => encodeStruct(KVM_SEGMENT, { ...seg, base: 1 as unknown as bigint })).toThrow(TypeError);
    expect(() => encodeStruct(KVM_VCPU_INIT, { target: 0, features: [0, 0, 0, 0, 0, 0, 0, 0] })).toThrow(RangeError);
    expect(() => encodeStruct(KVM_VCPU_INIT, { target: 0, features: [2 ** 32] })).toThrow(RangeError);
  });
  it('decodes what it encodes, at an offset, with arrays and missing fields as zero', () => {
    const b = Buffer.alloc(40);
    writeStruct(b, VFIO_REGION_INFO, { index: 7, size: 1n << 63n }, 8);
    expect(decodeStruct(VFIO_REGION_INFO, b, 8)).toEqual({ argsz: 0, flags: 0, index: 7, capOffset: 0, size: 1n << 63n, offset: 0n });
    expect(() => decodeStruct(VFIO_REGION_INFO, b, 9)).toThrow(RangeError);
    const init = decodeStruct(KVM_VCPU_INIT, encodeStruct(KVM_VCPU_INIT, { target: 5, features: [1, 2] }));
    expect(init).toEqual({ target: 5, features: [1, 2, 0, 0, 0, 0, 0] });
  });
  it('never allocates less than the struct', () => {
    expect(() => encodeStruct(VFIO_REGION_INFO, {}, 31)).toThrow(RangeError);
    expect(encodeStruct(VFIO_REGION_INFO, {}, 64).length).toBe(64);
  });
});
