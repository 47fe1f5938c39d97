/**
 * Map a device into a VM and read it through a vCPU, with no VFIO on the machine: a memfd stands in for
 * the seed device (QEMU's NVMe, 16 KiB BAR0 with the MSI-X table at 0x2000 and the PBA at 0x3000) through
 * the `VfioDeviceHandle` seam. The mapper mmaps the memfd into real KVM slots; a probe vCPU reads the BAR
 * (the NVMe CAP register is a direct mapping) and the guest's MSI-X table (relocated to a trapped upper
 * half of the BAR: an MMIO exit). Needs /dev/kvm
 * (x86-64 or arm64), no root.
 *
 *   npx tsx examples/map-memfd-device.ts    (or compile it with tsc)
 */
import { readFileSync } from 'node:fs';
import {
  BarMapper, GuestMemoryProbe, KvmVm, descriptionFromJSON, hex, planBarMappings, realSyscalls,
  type DeviceDescription, type VfioDeviceHandle,
} from 'vfio-bars';

const BAR_GPA = 0x4000_0000n; // where this VMM puts BAR0 (below 4 GiB: any guest can reach it)

/** The seed device, as `vfio-bars describe` captured it, with BAR0 at offset 0 of our memfd. */
function seedDescription(): DeviceDescription {
  const captured = descriptionFromJSON(JSON.parse(readFileSync(new URL('../profiles/qemu-nvme.json', import.meta.url), 'utf8')));
  return { ...captured, bdf: 'memfd:nvme', regions: captured.regions.filter((r) => r.index === 0).map((r) => ({ ...r, offset: 0n })) };
}

/** A VfioDeviceHandle over a memfd: what BarMapper needs from a device, and nothing more. */
class MemfdNvme implements VfioDeviceHandle, Disposable {
  readonly bdf = 'memfd:nvme';
  readonly syscalls = realSyscalls();
  readonly dma = undefined; // no IOMMU to program
  readonly iommuMode = 'noiommu' as const;
  readonly fd = this.syscalls.memfdCreate('nvme-bar0', 0);
  readonly #description = seedDescription();

  constructor() {
    this.syscalls.ftruncate(this.fd, 0x4000n);
    const cap = Buffer.alloc(8);
    cap.writeBigUInt64LE(0x0000_0020_1000_07ffn); // NVMe CAP: MQES 2047, timeout, doorbell stride 0, CSS NVM
    this.syscalls.pwrite(this.fd, cap, 0n);
  }

  describe(): DeviceDescription {
    return this.#description;
  }

  [Symbol.dispose](): void {
    this.syscalls.close(this.fd);
  }
}

using device = new MemfdNvme();
using vm = KvmVm.create();
using probe = GuestMemoryProbe.create(vm); // one vCPU with a page of code that loads a GPA and halts
const pageSize = BigInt(device.syscalls.pageSize());
const plan = planBarMappings(device.describe(), { pageSize, barAddresses: { 0: BAR_GPA } });
using mapper = new BarMapper(device, vm);
const [bar] = mapper.map(plan); // mmap -> KVM slot; all or nothing

for (const { slot, mapping } of bar!.regions) {
  console.log(`slot ${slot}: BAR0+${hex(mapping.barOffset)} size ${hex(mapping.size)} at gpa ${hex(mapping.gpa ?? 0n)}`);
}
for (const t of plan.bars[0]!.trapped) console.log(`trapped ${hex(t.barOffset)}+${hex(t.size)} (${t.kind}): ${t.reason}`);

const cap = probe.read(BAR_GPA, 8);
console.log(`vCPU read of CAP at ${hex(BAR_GPA)}: ${cap.kind === 'value' ? hex(cap.value) : cap.kind}`);
// The plan moved the guest's MSI-X table out of the mapped page into a trapped upper half of the BAR.
const tableGpa = BAR_GPA + (plan.bars[0]!.msix?.table?.offset ?? 0n);
const table = probe.read(tableGpa);
const served = table.kind === 'mmio' ? 'MMIO exit (trapped, the VMM serves it)' : table.kind;
console.log(`vCPU read of the MSI-X table at ${hex(tableGpa)}: ${served}`);
