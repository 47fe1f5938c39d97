import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IOCTL, decodeDmaMap, decodeRegionInfo, decodeUserspaceMemoryRegion, encodeDmaMap, encodeDmaUnmap, encodeIoasMap, encodeOneReg,
  encodeRegionInfo, encodeUserspaceMemoryRegion, ioc, parseU64, vfioPciRegionOffset, writeRegionInfo,
  KVM_DEV_TYPE, decodeCreateDevice, decodeDeviceAttr, encodeCreateDevice, encodeDeviceAttr,
} from '../../src/uapi/index.js';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

describe('_IOC encoding', () => {
  it('puts the read bit in bit 31 and stays an unsigned number', () => {
    expect(IOCTL.KVM_GET_REGS).toBe(0x8090ae81);
    expect(IOCTL.KVM_GET_REGS).toBeGreaterThan(0);
    expect(ioc('readwrite', 0xae, 0xe0, 12)).toBe(0xc00caee0);
    expect(IOCTL.KVM_SET_USER_MEMORY_REGION).toBe(0x4020ae46);
  });
  it('rejects fields that do not fit', () => {
    expect(() => ioc('read', 0x100, 0, 0)).toThrow(RangeError);
    expect(() => ioc('read', 0xae, 0, 1 << 14)).toThrow(RangeError);
  });
  it('vfio-pci region offsets are index << 40, beyond 32 bits', () => {
    expect(vfioPciRegionOffset(7)).toBe(0x700_0000_0000n);
  });
});

describe('struct codecs', () => {
  it('round-trip every u64 across the whole range', () => {
    fc.assert(fc.property(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 3 }), u64, u64, u64, (slot, flags, gpa, size, hva) => {
      const r = { slot, flags, guestPhysAddr: gpa, memorySize: size, userspaceAddr: hva };
      expect(decodeUserspaceMemoryRegion(encodeUserspaceMemoryRegion(r))).toEqual(r);
    }), { numRuns: 2000 });
    fc.assert(fc.property(u64, u64, u64, (vaddr, iova, size) => {
      expect(decodeDmaMap(encodeDmaMap({ flags: 3, vaddr, iova, size }))).toEqual({ argsz: 32, flags: 3, vaddr, iova, size });
    }), { numRuns: 2000 });
    fc.assert(fc.property(u64, u64, (size, offset) => {
      const b = Buffer.alloc(32);
      writeRegionInfo(b, { argsz: 32, flags: 0xf, index: 7, capOffset: 0, size, offset });
      expect(decodeRegionInfo(b)).toEqual({ argsz: 32, flags: 0xf, index: 7, capOffset: 0, size, offset });
    }), { numRuns: 2000 });
  });

  it('never wraps: negative, > 2^64-1 and non-bigint values are rejected', () => {
    const base = { slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0n };
    expect(() => encodeUserspaceMemoryRegion({ ...base, guestPhysAddr: -1n })).toThrow(RangeError);
    expect(() => encodeUserspaceMemoryRegion({ ...base, memorySize: 1n << 64n })).toThrow(RangeError);
    expect(() => encodeUserspaceMemoryRegion({ ...base, slot: -1 })).toThrow(RangeError);
    expect(() => encodeUserspaceMemoryRegion({ ...base, slot: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeUserspaceMemoryRegion({ ...base, slot: 1.5 })).toThrow(RangeError);
    expect(() => encodeUserspaceMemoryRegion({ ...base, userspaceAddr: 5 as unknown as bigint })).toThrow(TypeError);
    expect(() => encodeDmaUnmap({ flags: 0, iova: -4096n, size: 4096n })).toThrow(RangeError);
    expect(() => encodeIoasMap({ flags: 0, ioasId: 1, userVa: 0n, length: 1n << 64n, iova: 0n })).toThrow(RangeError);
    expect(() => encodeOneReg(-1n, 0n)).toThrow(RangeError);
    expect(() => encodeRegionInfo(0, 16)).toThrow(RangeError);
    expect(() => parseU64('x', '0x1' + '0'.repeat(16))).toThrow(RangeError);
    expect(() => parseU64('x', '-1')).toThrow(RangeError);
  });

  it('decoders reject short buffers', () => {
    expect(() => decodeRegionInfo(Buffer.alloc(31))).toThrow(RangeError);
    expect(() => decodeUserspaceMemoryRegion(Buffer.alloc(16))).toThrow(RangeError);
  });
});

describe('interrupt codecs (SET_IRQS, GSI routing, irqfd, MSI)', () => {
  it('encode what they decode and refuse values out of range', async () => {
    const u = await import('../../src/uapi/index.js');
    const set = u.decodeIrqSet(u.encodeIrqSetEventfds(u.VFIO_PCI_IRQ.MSIX, 2, [7, -1, 9]));
    expect(set).toMatchObject({ argsz: 32, flags: u.VFIO_IRQ_SET.DATA_EVENTFD | u.VFIO_IRQ_SET.ACTION_TRIGGER, index: 2, start: 2, count: 3, eventfds: [7, -1, 9] });
    expect(u.decodeIrqSet(u.encodeIrqSetDisable(2))).toMatchObject({ argsz: 20, count: 0, flags: u.VFIO_IRQ_SET.DATA_NONE | u.VFIO_IRQ_SET.ACTION_TRIGGER });
    expect(() => u.encodeIrqSetEventfds(2, 0, [2 ** 31])).toThrow(RangeError);
    const routing = u.decodeIrqRouting(u.encodeIrqRouting([
      { gsi: 40, type: 'msi', addressLo: 0xfee0_0000, addressHi: 1, data: 0x4041, devid: 0x18 },
      { gsi: 5, type: 'irqchip', irqchip: 2, pin: 5 },
    ]));
    expect(routing.nr).toBe(2);
    expect(routing.entries[0]).toEqual({ gsi: 40, type: 2, flags: u.KVM_MSI_VALID_DEVID, u: [0xfee0_0000, 1, 0x4041, 0x18] });
    expect(routing.entries[1]).toEqual({ gsi: 5, type: 1, flags: 0, u: [2, 5, 0, 0] });
    expect(() => u.encodeIrqRouting([{ gsi: -1, type: 'irqchip', irqchip: 0, pin: 0 }])).toThrow(RangeError);
    expect(() => u.encodeIrqRouting([{ gsi: 1, type: 'msi', addressLo: 2 ** 32, addressHi: 0, data: 0 }])).toThrow(RangeError);
    expect(u.decodeIrqfd(u.encodeIrqfd({ fd: 12, gsi: 40, flags: u.KVM_IRQFD_FLAGS.DEASSIGN }))).toEqual({ fd: 12, gsi: 40, flags: 1, resamplefd: 0 });
    expect(u.decodeMsi(u.encodeMsi({ addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 }))).toEqual({ addressLo: 0xfee0_0000, addressHi: 0, data: 0x41, flags: 0, devid: 0 });
  });
});

describe('KVM device codecs (the VFIO pseudo-device)', () => {
  it('kvm_device_attr round-trips every u64 attr and addr; kvm_create_device keeps type and flags', () => {
    fc.assert(fc.property(fc.nat({ max: 0xffff_ffff }), u64, u64, (group, attr, addr) => {
      const a = { flags: 0, group, attr, addr };
      expect(decodeDeviceAttr(encodeDeviceAttr(a))).toEqual(a);
    }));
    expect(decodeCreateDevice(encodeCreateDevice(KVM_DEV_TYPE.VFIO, 1))).toEqual({ type: 4, fd: 0, flags: 1 });
  });
  it('rejects values a u32/u64 field cannot hold instead of wrapping them', () => {
    expect(() => encodeDeviceAttr({ flags: 0, group: 1, attr: 1n, addr: 1n << 64n })).toThrow(RangeError);
    expect(() => encodeDeviceAttr({ flags: 0, group: 1, attr: -1n, addr: 0n })).toThrow(RangeError);
    expect(() => encodeDeviceAttr({ flags: 0, group: 2 ** 32, attr: 1n, addr: 0n })).toThrow(RangeError);
    expect(() => encodeCreateDevice(-1)).toThrow(RangeError);
    expect(() => decodeDeviceAttr(Buffer.alloc(23))).toThrow(RangeError);
  });
});
