/**
 * Built-in device descriptions for `vfio-bars plan --profile NAME`: what `describe()` returns under Linux
 * 6.1 vfio-pci on the emulated 64 KiB-page arm64 host for QEMU 7.2's NVMe and e1000e. The emulated tier
 * captures both on every run and asserts they still equal these (test/emu/emu.test.ts); the 64 KiB-BAR
 * and unaligned variants are the same device under those QEMU options.
 */
import type { DeviceDescription, RegionDescription } from '../index.js';

const R = 1, W = 2, MMAP = 4, CAPS = 8;
const offsetOf = (index: number): bigint => BigInt(index) << 40n;
const msixMappable = { kind: 'msix-mappable', id: 3, version: 1 } as const;

function emptyBars(from: number): RegionDescription[] {
  return Array.from({ length: 6 - from }, (_, i) => ({ index: from + i, flags: 0, size: 0n, offset: offsetOf(from + i), capabilities: [] }));
}
/** vfio-pci's irq indices: INTx, MSI (0 vectors when the device has no MSI capability), MSI-X, ERR, REQ. */
function pciIrqs(msiVectors: number, msixVectors: number): DeviceDescription['irqs'] {
  return [
    { index: 0, flags: 0x7, count: 1 },
    { index: 1, flags: 0x9, count: msiVectors },
    { index: 2, flags: 0x9, count: msixVectors },
    { index: 3, flags: 0x9, count: 1 },
    { index: 4, flags: 0x9, count: 1 },
  ];
}

/** BAR registers `from`..5 unimplemented. */
function unusedBars(from: number): DeviceDescription['bars'] {
  return Array.from({ length: 6 - from }, (_, i) => ({ index: from + i, kind: 'unused' as const, is64Bit: false, prefetchable: false, address: 0n }));
}

const CONFIG: RegionDescription = { index: 7, flags: R | W, size: 0x1000n, offset: offsetOf(7), capabilities: [] };
const NO_ROM: RegionDescription = { index: 6, flags: 0, size: 0n, offset: offsetOf(6), capabilities: [] };

/** QEMU NVMe (1b36:0010), 65 MSI-X vectors: 16 KiB BAR0 with the table at 0x2000 and the PBA at 0x3000. */
export const qemuNvme: DeviceDescription = {
  bdf: '0000:00:01.0',
  flags: 0x3, // RESET | PCI
  numRegions: 9,
  numIrqs: 5,
  regions: [
    { index: 0, flags: R | W | MMAP | CAPS, size: 0x4000n, offset: offsetOf(0), capabilities: [msixMappable] },
    ...emptyBars(1),
    NO_ROM,
    CONFIG,
  ],
  irqs: pciIrqs(0, 65),
  config: { vendorId: 0x1b36, deviceId: 0x0010, classCode: 0x010802, headerType: 0, capabilities: [{ id: 0x11, offset: 0x40 }, { id: 0x10, offset: 0x80 }, { id: 0x01, offset: 0x60 }] },
  bars: [
    { index: 0, kind: 'memory', is64Bit: true, prefetchable: false, address: 0x80_0000_0000n },
    { index: 1, kind: 'upper-half', is64Bit: true, prefetchable: false, address: 0n },
    ...unusedBars(2),
  ],
  msix: { capOffset: 0x40, vectors: 65, table: { bir: 0, offset: 0x2000n, size: 0x410n }, pba: { bir: 0, offset: 0x3000n, size: 0x10n } },
};

/** QEMU NVMe with msix_qsize=2048: the MSI-X table grows BAR0 to 64 KiB (table 0x2000+0x8000, PBA 0xa000). */
export const qemuNvme64kBar: DeviceDescription = {
  ...qemuNvme,
  regions: [
    { index: 0, flags: R | W | MMAP | CAPS, size: 0x1_0000n, offset: offsetOf(0), capabilities: [msixMappable] },
    ...qemuNvme.regions.slice(1),
  ],
  irqs: pciIrqs(0, 2048),
  msix: { capOffset: 0x40, vectors: 2048, table: { bir: 0, offset: 0x2000n, size: 0x8000n }, pba: { bir: 0, offset: 0xa000n, size: 0x100n } },
};

/**
 * QEMU e1000e (8086:10d3, an Intel 82574L): MSI-X in its own 16 KiB BAR3 (table at 0, PBA at 0x2000),
 * 128 KiB register BAR0, 128 KiB flash BAR1, 32-byte I/O BAR2.
 */
export const qemuE1000e: DeviceDescription = {
  bdf: '0000:00:02.0',
  flags: 0x3,
  numRegions: 9,
  numIrqs: 5,
  regions: [
    { index: 0, flags: R | W | MMAP, size: 0x2_0000n, offset: offsetOf(0), capabilities: [] },
    { index: 1, flags: R | W | MMAP, size: 0x2_0000n, offset: offsetOf(1), capabilities: [] },
    { index: 2, flags: R | W, size: 0x20n, offset: offsetOf(2), capabilities: [] },
    { index: 3, flags: R | W | MMAP | CAPS, size: 0x4000n, offset: offsetOf(3), capabilities: [msixMappable] },
    ...emptyBars(4),
    NO_ROM,
    CONFIG,
  ],
  irqs: pciIrqs(1, 5),
  config: { vendorId: 0x8086, deviceId: 0x10d3, classCode: 0x020000, headerType: 0, capabilities: [{ id: 0x01, offset: 0xc8 }, { id: 0x05, offset: 0xd0 }, { id: 0x10, offset: 0xe0 }, { id: 0x11, offset: 0xa0 }] },
  bars: [
    { index: 0, kind: 'memory', is64Bit: false, prefetchable: false, address: 0x1000_0000n },
    { index: 1, kind: 'memory', is64Bit: false, prefetchable: false, address: 0x1002_0000n },
    { index: 2, kind: 'io', is64Bit: false, prefetchable: false, address: 0x1000n },
    { index: 3, kind: 'memory', is64Bit: false, prefetchable: false, address: 0x1004_0000n },
    ...unusedBars(4),
  ],
  msix: { capOffset: 0xa0, vectors: 5, table: { bir: 3, offset: 0n, size: 0x50n }, pba: { bir: 3, offset: 0x2000n, size: 0x8n } },
};

/** The same NVMe when its BAR0 is not page-aligned on the host (QEMU's default NIC left in): no MMAP. */
export const qemuNvmeUnaligned: DeviceDescription = {
  ...qemuNvme,
  regions: [{ index: 0, flags: R | W, size: 0x4000n, offset: offsetOf(0), capabilities: [] }, ...qemuNvme.regions.slice(1)],
  bars: [{ ...qemuNvme.bars[0]!, address: 0x80_0000_4000n }, ...qemuNvme.bars.slice(1)],
};

export const PROFILES: Readonly<Record<string, { readonly description: DeviceDescription; readonly summary: string }>> = {
  'qemu-nvme': { description: qemuNvme, summary: 'QEMU NVMe, 16 KiB BAR0 with MSI-X table and PBA inside (the 64 KiB-page EINVAL case)' },
  'qemu-nvme-64k-bar': { description: qemuNvme64kBar, summary: 'QEMU NVMe with msix_qsize=2048: a 64 KiB BAR0 (positive control)' },
  'qemu-nvme-unaligned': { description: qemuNvmeUnaligned, summary: 'QEMU NVMe whose BAR0 is not page-aligned on the host: VFIO reports no MMAP' },
  'qemu-e1000e': { description: qemuE1000e, summary: 'QEMU e1000e: MSI-X table and PBA in their own 16 KiB BAR3' },
};
