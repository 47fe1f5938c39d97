import { describe, expect, it } from 'vitest';
import { MsixTableShadow } from '../../src/guest/index.js';

describe('MsixTableShadow', () => {
  it('resets masked, keeps only the mask bit of vector control, reports changed vectors once, drops writes beyond the table', () => {
    const t = new MsixTableShadow(2);
    expect([t.vectorMasked(0), t.vectorMasked(1), t.highestUnmasked()]).toEqual([true, true, -1]);
    const changed: number[] = [];
    t.write(12, Uint8Array.of(0xff, 0xff, 0xff, 0xff), (v) => changed.push(v));
    const control = new Uint8Array(4);
    t.read(12, control);
    expect([...control]).toEqual([1, 0, 0, 0]); // reserved bits read 0, still masked
    expect(changed).toEqual([]); // nothing changed
    t.write(8, Uint8Array.of(0x41, 0, 0, 0, 0, 0, 0, 0), (v) => changed.push(v)); // data + unmask in one 8-byte write
    t.write(16, Uint8Array.of(0, 0, 0xe0, 0xfe, 0, 0, 0, 0), (v) => changed.push(v));
    expect(changed).toEqual([0, 1]);
    expect(t.message(0)).toEqual({ addressLo: 0, addressHi: 0, data: 0x41 });
    expect(t.message(1).addressLo).toBe(0xfee0_0000);
    expect([t.masked(0), t.deliverable(0)]).toEqual([false, false]); // not enabled yet
    t.enabled = true;
    expect(t.deliverable(0)).toBe(true);
    t.functionMasked = true;
    expect(t.deliverable(0)).toBe(false);
    t.write(32, Uint8Array.of(1, 2, 3, 4), () => changed.push(99));
    const beyond = new Uint8Array(4).fill(7);
    t.read(30, beyond);
    expect([...beyond]).toEqual([0, 0, 0, 0]);
    expect(changed).toEqual([0, 1]);
    expect(() => t.message(2)).toThrow(RangeError);
    expect(() => new MsixTableShadow(0)).toThrow(RangeError);
    t.reset();
    expect([t.enabled, t.functionMasked, t.vectorMasked(0)]).toEqual([false, false, true]);
  });
});
