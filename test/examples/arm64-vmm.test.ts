/**
 * The example VMM's own pieces, on any machine: the FDT writer (read back by an independent reader
 * written from the Devicetree Specification), the machine's device tree, the pl011 subset, the MMIO
 * bus and the boot layout. The emulated tier boots Linux with them (test/emu/vmm.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { FdtWriter } from '../../examples/arm64-vmm/fdt.js';
import { buildDeviceTree } from '../../examples/arm64-vmm/device-tree.js';
import { Pl011 } from '../../examples/arm64-vmm/pl011.js';
import { MmioBus } from '../../examples/arm64-vmm/mmio-bus.js';
import { planBootLayout } from '../../examples/arm64-vmm/guest-ram.js';
import { EcamHostBridge } from '../../examples/arm64-vmm/pci-ecam.js';

interface Node { name: string; props: Map<string, Buffer>; children: Node[] }

/** Parses a DTB: header checks, then the structure block into a tree. */
function readFdt(blob: Buffer): Node {
  expect(blob.readUInt32BE(0)).toBe(0xd00dfeed);
  expect(blob.readUInt32BE(4)).toBe(blob.length);
  expect(blob.readUInt32BE(20)).toBe(17);
  const structOff = blob.readUInt32BE(8);
  const stringsOff = blob.readUInt32BE(12);
  const rsv = blob.readUInt32BE(16);
  expect(blob.readBigUInt64BE(rsv) + blob.readBigUInt64BE(rsv + 8)).toBe(0n);
  expect(structOff + blob.readUInt32BE(36)).toBe(stringsOff);
  let at = structOff;
  const align = (): void => { at = (at + 3) & ~3; };
  const stack: Node[] = [];
  let root: Node | undefined;
  for (;;) {
    const token = blob.readUInt32BE(at);
    at += 4;
    if (token === 1) {
      const end = blob.indexOf(0, at);
      const node: Node = { name: blob.toString('utf8', at, end), props: new Map(), children: [] };
      at = end + 1;
      align();
      if (stack.length > 0) stack.at(-1)!.children.push(node);
      else root = node;
      stack.push(node);
    } else if (token === 2) {
      stack.pop();
    } else if (token === 3) {
      const len = blob.readUInt32BE(at);
      const nameOff = blob.readUInt32BE(at + 4);
      const name = blob.toString('utf8', stringsOff + nameOff, blob.indexOf(0, stringsOff + nameOff));
      stack.at(-1)!.props.set(name, blob.subarray(at + 8, at + 8 + len));
      at += 8 + len;
      align();
    } else if (token === 9) {
      break;
    } else {
      throw new Error(`bad token ${token}`);
    }
  }
  expect(stack).toHaveLength(0);
  return root!;
}

const child = (n: Node, name: string): Node => {
  const found = n.children.find((c) => c.name === name);
  if (!found) throw new Error(`no node ${name} under ${n.name || '/'}: ${n.children.map((c) => c.name).join(', ')}`);
  return found;
};
const u32s = (b: Buffer): number[] => Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32BE(i * 4));
const str = (b: Buffer): string[] => b.toString('utf8').split('\0').slice(0, -1);

describe('FdtWriter', () => {
  it('writes nodes, typed properties and shared property names that an independent reader reads back', () => {
    const blob = new FdtWriter()
      .beginNode('').property('model', 'x').property('n', { u32: [1, 0xffff_ffff] })
      .beginNode('a@1').property('model', ['p', 'q']).property('big', { u64: [0x1_0000_0002n] }).property('flag', { empty: true }).endNode()
      .endNode().finish();
    const root = readFdt(blob);
    expect(str(root.props.get('model')!)).toEqual(['x']);
    expect(u32s(root.props.get('n')!)).toEqual([1, 0xffff_ffff]);
    const a = child(root, 'a@1');
    expect(str(a.props.get('model')!)).toEqual(['p', 'q']);
    expect(a.props.get('big')!.readBigUInt64BE(0)).toBe(0x1_0000_0002n);
    expect(a.props.get('flag')!.length).toBe(0);
    // "model" appears once in the strings block.
    expect(blob.toString('latin1').split('model\0').length - 1).toBe(1);
  });

  it('refuses unbalanced nodes and out-of-range cells', () => {
    expect(() => new FdtWriter().beginNode('').finish()).toThrow(/left open/);
    expect(() => new FdtWriter().endNode()).toThrow();
    expect(() => new FdtWriter().beginNode('').property('x', { u32: [-1] })).toThrow(RangeError);
    expect(() => new FdtWriter().beginNode('').property('x', { u64: [1n << 64n] })).toThrow(RangeError);
  });
});

describe('the machine device tree', () => {
  const tree = readFdt(
    buildDeviceTree({
      ramSize: 0x1000_0000n,
      vcpus: 1,
      bootargs: 'console=ttyAMA0 quiet',
      initrd: { start: 0x4fc0_0000n, end: 0x4fd0_0000n },
      pci: true,
    })
  );

  it('describes RAM, the initramfs, the console and PSCI over HVC', () => {
    expect(u32s(child(tree, 'memory@40000000').props.get('reg')!)).toEqual([0, 0x4000_0000, 0, 0x1000_0000]);
    const chosen = child(tree, 'chosen');
    expect(str(chosen.props.get('bootargs')!)).toEqual(['console=ttyAMA0 quiet']);
    expect(chosen.props.get('linux,initrd-start')!.readBigUInt64BE(0)).toBe(0x4fc0_0000n);
    expect(chosen.props.get('linux,initrd-end')!.readBigUInt64BE(0)).toBe(0x4fd0_0000n);
    expect(chosen.props.get('rng-seed')!.length).toBe(64);
    expect(str(child(tree, 'psci').props.get('method')!)).toEqual(['hvc']);
    expect(str(child(child(tree, 'cpus'), 'cpu@0').props.get('enable-method')!)).toEqual(['psci']);
  });

  it('puts RAM where the VMM placed it (a noiommu host: at the huge page\'s physical address)', () => {
    const atPhysical = readFdt(buildDeviceTree({ ramBase: 0xa000_0000n, ramSize: 0x1000_0000n, vcpus: 1, bootargs: '' }));
    expect(u32s(child(atPhysical, 'memory@a0000000').props.get('reg')!)).toEqual([0, 0xa000_0000, 0, 0x1000_0000]);
  });

  it('places the GICv3, its ITS, the timer PPIs and the pl011 SPI where the VMM creates them', () => {
    const gic = child(tree, 'intc@8000000');
    expect(u32s(gic.props.get('reg')!)).toEqual([0, 0x800_0000, 0, 0x1_0000, 0, 0x80a_0000, 0, 0x2_0000]);
    expect(u32s(child(gic, 'its@8080000').props.get('reg')!)).toEqual([0, 0x808_0000, 0, 0x2_0000]);
    expect(u32s(child(tree, 'timer').props.get('interrupts')!)).toEqual([1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
    const uart = child(tree, 'pl011@9000000');
    expect(u32s(uart.props.get('interrupts')!)).toEqual([0, 1, 4]);
    expect(str(uart.props.get('clock-names')!)).toEqual(['uartclk', 'apb_pclk']);
  });

  it('has a generic ECAM host bridge with 32- and 64-bit windows and MSIs through the ITS, without probe-only', () => {
    const pcie = child(tree, 'pcie@4010000000');
    expect(str(pcie.props.get('compatible')!)).toEqual(['pci-host-ecam-generic']);
    expect(u32s(pcie.props.get('ranges')!)).toEqual([
      0x0200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 0x2eff_0000, // 32-bit window below 4 GiB
      0x0300_0000, 0x80, 0, 0x80, 0, 0x80, 0, // 64-bit window at 512 GiB
    ]);
    expect(u32s(pcie.props.get('msi-map')!)).toEqual([0, 2, 0, 0x1_0000]);
    expect(pcie.props.has('linux,pci-probe-only')).toBe(false);
  });
});

describe('Pl011 subset', () => {
  it('transmits bytes, reports an empty FIFO, answers the PrimeCell ids, raises its line only when TX is unmasked', () => {
    const out: number[] = [];
    const irq: boolean[] = [];
    const uart = new Pl011({ output: (b) => out.push(b), irq: (l) => irq.push(l) });
    uart.write(0x0n, 4, 0x41n);
    expect(out).toEqual([0x41]);
    expect(uart.read(0x18n) & 0x20n).toBe(0n); // TXFF never set
    expect(uart.read(0x18n) & 0x80n).toBe(0x80n);
    expect([0xfe0n, 0xfe4n, 0xfe8n, 0xfecn].map((o) => uart.read(o))).toEqual([0x11n, 0x10n, 0x14n, 0x00n]);
    expect([0xff0n, 0xff4n, 0xff8n, 0xffcn].map((o) => uart.read(o))).toEqual([0x0dn, 0xf0n, 0x05n, 0xb1n]);
    uart.write(0x38n, 4, 0x50n); // RX + RT only
    expect(irq).toEqual([]);
    uart.write(0x38n, 4, 0x70n); // + TX
    expect(uart.read(0x40n)).toBe(0x20n);
    uart.write(0x38n, 4, 0x50n);
    expect(irq).toEqual([true, false]);
    uart.write(0x24n, 4, 13n);
    expect(uart.read(0x24n)).toBe(13n);
    expect(uart.transmitted).toBe(1);
  });
});

describe('MmioBus', () => {
  it('routes by range, counts per device, reads zero where nothing is, refuses overlaps', () => {
    const bus = new MmioBus();
    const seen: bigint[] = [];
    bus.add('a', 0x1000n, 0x100n, { read: (o) => o, write: (o) => seen.push(o) });
    expect(() => bus.add('b', 0x10f0n, 0x100n, { read: () => 0n, write: () => undefined })).toThrow(/overlaps a/);
    expect(bus.read(0x1010n, 4)).toBe(0x10n);
    bus.write(0x1020n, 4, 1n);
    expect(bus.read(0x9000n, 4)).toBe(0n);
    bus.move('a', 0x2000n);
    expect(bus.read(0x2008n, 4)).toBe(8n);
    expect(seen).toEqual([0x20n]);
    expect(Object.fromEntries(bus.counts)).toEqual({ a: 3, unclaimed: 1 });
  });
});

describe('boot layout', () => {
  const image = Buffer.alloc(0x1000);
  image.writeBigUInt64LE(0n, 8);
  image.writeBigUInt64LE(0x200_0000n, 16);
  image.writeUInt32LE(0x644d5241, 56);

  it('puts the Image at the RAM base, the DTB in the last 2 MiB and the initramfs below it', () => {
    const layout = planBootLayout({ base: 0x4000_0000n, size: 0x1000_0000n }, image, 0x12345);
    expect(layout.kernel).toBe(0x4000_0000n);
    expect(layout.kernelEnd).toBe(0x4200_0000n);
    expect(layout.deviceTree).toBe(0x4fe0_0000n);
    expect(layout.initrd).toEqual({ start: 0x4fde_d000n, end: 0x4fde_d000n + 0x12345n });
  });

  it('refuses a non-Image and an initramfs that would overlap the kernel', () => {
    expect(() => planBootLayout({ base: 0x4000_0000n, size: 0x1000_0000n }, Buffer.alloc(100), undefined)).toThrow(/arm64 Image/);
    expect(() => planBootLayout({ base: 0x4000_0000n, size: 0x400_0000n }, image, 0x200_0000)).toThrow(/overlap the kernel/);
  });
});

describe('EcamHostBridge', () => {
  it('routes bus 0 config accesses to the attached function; empty slots and other buses read all ones', () => {
    const ecam = new EcamHostBridge();
    const seen: [number, number, bigint][] = [];
    ecam.attach(1, 0, { configRead: (o, s) => BigInt(o * 16 + s), configWrite: (o, s, v) => seen.push([o, s, v]) });
    expect(ecam.read(BigInt((1 << 15) | 0x10), 4)).toBe(0x104n);
    ecam.write(BigInt((1 << 15) | 0x04), 2, 6n);
    expect(seen).toEqual([[4, 2, 6n]]);
    expect(ecam.read(0n, 4)).toBe(0xffff_ffffn);
    expect(ecam.read(BigInt((1 << 20) | (1 << 15)), 2)).toBe(0xffffn);
    expect(ecam.accesses).toBe(4);
    expect(() => ecam.attach(32, 0, { configRead: () => 0n, configWrite: () => undefined })).toThrow(RangeError);
  });
});
