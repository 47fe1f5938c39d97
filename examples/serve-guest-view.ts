/**
 * Serve what the guest sees of a passed-through device with the guest-view API: `PassthroughDevice` answers
 * config-space accesses and trapped MMIO exits in one call each. The seed device (QEMU's NVMe: 16 KiB BAR0,
 * 65 MSI-X vectors with the table at 0x2000 and the PBA at 0x3000) is stood in for by a memfd holding BAR0
 * at offset 0 and config space at 0x10000 (the `VfioDeviceHandle` seam). The VMM does not choose BAR
 * addresses: the "firmware" below sizes and programs BAR0 through config space, as OVMF or SeaBIOS would, and the
 * emulated config space moves the BAR through the mapper. A probe vCPU then reads the BAR: the NVMe CAP
 * register comes from the direct mapping, the relocated MSI-X table exits and is served by the guest view.
 * Needs /dev/kvm, no root, no VFIO.
 *
 *   npx tsx examples/serve-guest-view.ts    (or compile it with tsc)
 */
import { readFileSync } from 'node:fs';
import {
  BarMapper, GuestMemoryProbe, KvmVm, PassthroughDevice, descriptionFromJSON, hex, planBarMappings, realSyscalls,
  type DeviceDescription, type VfioDeviceHandle,
} from 'vfio-bars';

const CONFIG_OFFSET = 0x1_0000n; // where the stand-in keeps config space (VFIO region 7) in its memfd

/** The NVMe's config space as the device would answer it: ids, a 64-bit BAR0, MSI-X → PM → PCIe caps. */
function nvmeConfigSpace(): Buffer {
  const c = Buffer.alloc(0x1000);
  c.writeUInt16LE(0x1b36, 0x00); // vendor: Red Hat (QEMU)
  c.writeUInt16LE(0x0010, 0x02); // device: NVMe
  c.writeUInt16LE(0x0010, 0x06); // status: capability list
  c.writeUInt32LE((0x01_08_02 << 8) | 0x02, 0x08); // class 01:08:02 (NVMe), revision 2
  c.writeUInt32LE(0x0000_0004, 0x10); // BAR0: memory, 64-bit
  c.writeUInt8(0x40, 0x34); // capability pointer
  c.writeUInt16LE(0x6011, 0x40); // MSI-X, next 0x60
  c.writeUInt16LE(64, 0x42); // 65 vectors
  c.writeUInt32LE(0x2000, 0x44); // table: BIR 0, offset 0x2000
  c.writeUInt32LE(0x3000, 0x48); // PBA: BIR 0, offset 0x3000
  c.writeUInt16LE(0x8001, 0x60); // power management, next 0x80
  c.writeUInt16LE(0x0010, 0x80); // PCI Express, last
  return c;
}

/** A VfioDeviceHandle over a memfd, described as the captured seed device. */
class MemfdNvme implements VfioDeviceHandle, Disposable {
  readonly bdf = 'memfd:nvme';
  readonly syscalls = realSyscalls();
  readonly dma = undefined;
  readonly iommuMode = 'noiommu' as const;
  readonly fd = this.syscalls.memfdCreate('nvme', 0);

  constructor() {
    this.syscalls.ftruncate(this.fd, CONFIG_OFFSET + 0x1000n);
    const cap = Buffer.alloc(8);
    cap.writeBigUInt64LE(0x0000_0020_1000_07ffn); // NVMe CAP register at BAR0+0
    this.syscalls.pwrite(this.fd, cap, 0n);
    this.syscalls.pwrite(this.fd, nvmeConfigSpace(), CONFIG_OFFSET);
  }

  describe(): DeviceDescription {
    const seed = descriptionFromJSON(JSON.parse(readFileSync(new URL('../profiles/qemu-nvme.json', import.meta.url), 'utf8')));
    const inMemfd = { 0: 0n, 7: CONFIG_OFFSET } as Record<number, bigint>;
    const regions = seed.regions.filter((r) => r.index in inMemfd).map((r) => ({ ...r, offset: inMemfd[r.index]! }));
    return { ...seed, bdf: this.bdf, regions };
  }

  [Symbol.dispose](): void {
    this.syscalls.close(this.fd);
  }
}

using device = new MemfdNvme();
using vm = KvmVm.create();
using probe = GuestMemoryProbe.create(vm);
// The guest's firmware places BAR0, not the VMM. Map it at a provisional address (page-aligned, used by
// nothing else) and switch its decode off, as a device out of reset has COMMAND.MEM clear: the mmaps stay,
// no KVM slot is registered until the guest has programmed the BAR and turned memory decode on.
const provisional = 0x80_0000_0000n;
const plan = planBarMappings(device.describe(), { pageSize: BigInt(device.syscalls.pageSize()), barAddresses: { 0: provisional } });
using mapper = new BarMapper(device, vm);
mapper.map(plan);
mapper.setDecode(0, false);
using guest = new PassthroughDevice(device, mapper, vm);

// The VMM's handlers are one line each:
const onConfigRead = (offset: number, size: 1 | 2 | 4): number => guest.configRead(offset, size);
const onConfigWrite = (offset: number, size: 1 | 2 | 4, value: number): void => guest.configWrite(offset, size, value);
const onMmioExit = (gpa: bigint, data: Uint8Array, isWrite: boolean): boolean => guest.handleMmio(gpa, data, isWrite);

// Firmware enumerates the device...
console.log(`vendor:device ${hex(BigInt(onConfigRead(0x00, 2)))}:${hex(BigInt(onConfigRead(0x02, 2)))}`);
onConfigWrite(0x10, 4, 0xffff_ffff); // size BAR0 (both halves of the 64-bit BAR)
onConfigWrite(0x14, 4, 0xffff_ffff);
const sizeMask = (BigInt(onConfigRead(0x14, 4)) << 32n) | BigInt(onConfigRead(0x10, 4) & ~0xf);
const barSize = (~sizeMask & 0xffff_ffff_ffff_ffffn) + 1n;
console.log(`BAR0 sizes as ${hex(barSize)} (the device's 0x4000, doubled for the relocated MSI-X table)`);
const barGpa = 0x4000_0000n;
onConfigWrite(0x10, 4, Number(barGpa & 0xffff_fff0n)); // ...places it...
onConfigWrite(0x14, 4, Number(barGpa >> 32n));
onConfigWrite(0x04, 2, onConfigRead(0x04, 2) | 0x2); // ...and turns on memory decode: the BAR moves into KVM slots
console.log(`BAR0 at ${hex(mapper.plannedBar(0)?.guestAddress ?? 0n)}, slots: ${mapper.bars.get(0)!.regions.map((r) => r.slot).join(',')}`);

// The guest reads the device: CAP through the direct mapping, no exit.
const cap = probe.read(barGpa, 8);
console.log(`vCPU read of CAP: ${cap.kind === 'value' ? hex(cap.value) : cap.kind}`);

// The guest writes and reads MSI-X table entry 0: each access exits, and one call serves it.
const tableGpa = barGpa + (mapper.plannedBar(0)?.msix?.table?.offset ?? 0n);
const exit = probe.read(tableGpa);
if (exit.kind !== 'mmio') throw new Error('the MSI-X table should be trapped');
const written = new Uint8Array(new Uint32Array([0xfee0_0000]).buffer); // message address low
onMmioExit(tableGpa, written, true);
const data = new Uint8Array(4);
const handled = onMmioExit(exit.address, data, exit.isWrite);
const address = BigInt(new DataView(data.buffer).getUint32(0, true));
console.log(`MSI-X entry 0 address via MMIO exit at ${hex(exit.address)}: handled=${handled}, ${hex(address)}`);
console.log(`an address outside the device: handled=${onMmioExit(0x1000n, new Uint8Array(4), false)}`);
