// Runs inside the emulated 64 KiB aarch64 host on Linux 6.12 (node arm64), as `npm run bench:emu`'s huge-PFN
// part, against BAR2 of QEMU's ivshmem-plain (1 GiB of RAM behind a 64-bit prefetchable BAR) bound to vfio-pci:
// maps it, touches one byte per host page, and reports the loop's wall time and the process's minor faults
// (vfio-pci's fault and huge_fault handlers are counted there). Placements, interleaved round by round:
// the whole BAR through a VMM's path in the library's public API (VfioDevice.open, planBarMappings, KvmVm,
// BarMapper.map: one mmap, one KVM slot)
//   library           the mapper's own request: address ≡ file offset (mod the block hugePfnPlacement gives)
//   misplaced         the same request moved by one host page (a Syscalls wrapper shifts the alignOffset the
//                     mapper asks for; the mapper is unchanged): no block's PFN is aligned, nothing maps huge
//   unplaced          hugePfnAlign: false: wherever mmap puts it (6.12 with THP aligns a file mmap whose length
//                     is a PMD multiple to its offset by itself, see __get_unmapped_area)
// and a mapping that starts one page into the BAR (realSyscalls().mmap; its length is no PMD multiple)
//   offset-library    hugePfnPlacement: congruent, so its second half maps as one block
//   offset-size-only  aligned to hugePfnAlignment(length), QEMU's and cloud-hypervisor's rule: off by that page
//   offset-unplaced   wherever mmap puts it
// Prints one `HUGEPFN-RESULT {json}` line.
// Usage: node huge-pfn-touch.mjs BDF [rounds]
import { readFileSync } from 'node:fs';
import {
  BarMapper, KvmVm, PROT, VfioDevice, hugePfnAlignment, hugePfnPlacement, planBarMappings, realSyscalls,
} from '../../dist/index.js';

const BAR = 2;
const BAR_GPA = 0x40_0000_0000n;
const REGS_GPA = 0x1000_0000n;
const QUIET = { debug() {}, info() {}, warn() {} };
const hex = (v) => (v === undefined ? undefined : `0x${BigInt(v).toString(16)}`);

const [bdf, roundsArg] = process.argv.slice(2);
if (!bdf) throw new Error('usage: huge-pfn-touch.mjs BDF [rounds]');
const rounds = Number(roundsArg ?? 3);
const sys = realSyscalls();
const pageSize = sys.pageSize();

/** The Syscalls the device (and so the mapper) uses: the real ones, with the BAR's mmap request recorded and shifted. */
const steer = { shift: 0n, asked: undefined, offset: undefined };
const syscalls = new Proxy(sys, {
  get(target, prop) {
    if (prop === 'mmap') return steeredMmap;
    const value = Reflect.get(target, prop, target);
    return typeof value === 'function' ? value.bind(target) : value;
  },
});

function steeredMmap(fd, offset, length, prot, options = {}) {
  if (offset !== steer.offset) return sys.mmap(fd, offset, length, prot, options);
  steer.asked = options.align === undefined ? undefined : { align: options.align, alignOffset: options.alignOffset };
  if (steer.shift === 0n || options.align === undefined) return sys.mmap(fd, offset, length, prot, options);
  const alignOffset = ((options.alignOffset ?? 0n) + steer.shift) % options.align;
  return sys.mmap(fd, offset, length, prot, { ...options, alignOffset });
}

/** One read per host page; returns the sum so the loop cannot be optimised away. */
function touch(bytes, stride) {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += stride) sum += bytes[i];
  return sum;
}

/** BAR2's physical start (sysfs `resource`, line 3): a huge block needs the PFN aligned as well. */
function barPhysicalStart() {
  const line = readFileSync(`/sys/bus/pci/devices/${bdf}/resource`, 'utf8').split('\n')[BAR];
  return BigInt(line.split(/\s+/)[0]);
}

/** The THP sysfs setting, or why there is none (a kernel without CONFIG_TRANSPARENT_HUGEPAGE has no huge PFN maps). */
function thpSetting() {
  try {
    return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim();
  } catch {
    return 'no transparent_hugepage in sysfs';
  }
}

/** Touches a mapping once: its placement against the block, the process's minor faults and the loop's wall time. */
function touchMapping(host, fileOffset, asked) {
  const block = hugePfnPlacement(host.length, fileOffset, BigInt(pageSize)).align;
  const bytes = new Uint8Array(host.view);
  const faultsBefore = process.resourceUsage().minorPageFault;
  const started = process.hrtime.bigint();
  touch(bytes, pageSize);
  const elapsed = process.hrtime.bigint() - started;
  const faults = process.resourceUsage().minorPageFault - faultsBefore;
  return {
    address: hex(host.address),
    addressModBlock: hex(host.address % block),
    offsetModBlock: hex(fileOffset % block),
    congruent: host.address % block === fileOffset % block,
    asked: asked && { align: hex(asked.align), alignOffset: hex(asked.alignOffset) },
    faults,
    ms: Number(elapsed) / 1e6,
  };
}

/** The whole BAR through BarMapper.map (mmap + KVM slot), as a VMM maps it; unmapped again after the touch. */
function measureMapper(device, vm, plan, placement) {
  steer.shift = placement.shift;
  steer.asked = undefined;
  const mapper = new BarMapper(device, vm, { hugePfnAlign: placement.hugePfnAlign, logger: QUIET });
  try {
    const region = mapper.map(plan).find((b) => b.index === BAR).regions[0];
    return touchMapping(region.host, steer.offset, steer.asked);
  } finally {
    mapper.unmapAll();
  }
}

/**
 * A mapping that starts one page into the BAR (as the direct mapping after an MSI-X hole at the BAR's start does):
 * its length is no multiple of the block, so the kernel's own THP alignment of file mmaps does not apply, and
 * aligning by size (QEMU, cloud-hypervisor) puts it off by that page. Raw mmap with the placement under test.
 */
function measureOffset(device, region, place) {
  const skip = BigInt(pageSize);
  const fileOffset = region.offset + skip;
  const length = region.size - skip;
  const asked = place(length, fileOffset);
  const host = sys.mmap(device.fd, fileOffset, length, PROT.READ | PROT.WRITE, { shared: true, ...asked });
  try {
    return touchMapping(host, fileOffset, asked);
  } finally {
    sys.munmap(host);
  }
}

const PLACEMENTS = [
  { name: 'library', run: (c) => measureMapper(c.device, c.vm, c.plan, { hugePfnAlign: true, shift: 0n }) },
  { name: 'misplaced', run: (c) => measureMapper(c.device, c.vm, c.plan, { hugePfnAlign: true, shift: BigInt(pageSize) }) },
  { name: 'unplaced', run: (c) => measureMapper(c.device, c.vm, c.plan, { hugePfnAlign: false, shift: 0n }) },
  { name: 'offset-library', run: (c) => measureOffset(c.device, c.region, (len, off) => hugePfnPlacement(len, off, BigInt(pageSize))) },
  { name: 'offset-size-only', run: (c) => measureOffset(c.device, c.region, (len) => ({ align: hugePfnAlignment(len), alignOffset: 0n })) },
  { name: 'offset-unplaced', run: (c) => measureOffset(c.device, c.region, () => undefined) },
];

function main() {
  const result = { kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), pageSize, node: process.version };
  result.thp = thpSetting();
  const device = VfioDevice.open(bdf, { syscalls });
  try {
    const description = device.describe();
    const region = description.regions.find((r) => r.index === BAR);
    steer.offset = region.offset;
    const physical = barPhysicalStart();
    const block = hugePfnPlacement(region.size, region.offset, BigInt(pageSize));
    result.bar = {
      index: BAR, size: hex(region.size), fileOffset: hex(region.offset), physical: hex(physical),
      block: hex(block?.align), physicalModBlock: hex(block && physical % block.align), iommu: device.iommuMode,
    };
    const plan = planBarMappings(description, { pageSize, barAddresses: { 0: REGS_GPA, [BAR]: BAR_GPA } });
    result.plannedMappings = plan.bars.find((b) => b.index === BAR).mappings.map((m) => ({ size: hex(m.size), reason: m.reason }));
    const vm = KvmVm.create();
    try {
      // A warm-up round, not reported: the outer QEMU allocates the RAM backend's pages on their first touch, and
      // touch() gets compiled. Then each round runs every placement, the order rotated so none is always first.
      const context = { device, vm, plan, region };
      result.warmUp = PLACEMENTS.map((p) => p.run(context));
      result.placements = PLACEMENTS.map((p) => ({ name: p.name, rounds: [] }));
      for (let round = 0; round < rounds; round++) {
        for (let k = 0; k < PLACEMENTS.length; k++) {
          const i = (round + k) % PLACEMENTS.length;
          result.placements[i].rounds.push(PLACEMENTS[i].run(context));
        }
      }
    } finally {
      vm.close();
    }
  } finally {
    device.close();
  }
  return result;
}

let out;
try {
  out = { ok: true, ...main() };
} catch (error) {
  out = { ok: false, error: { name: error?.name, code: error?.code, message: String(error?.message ?? error), stack: error?.stack } };
}
console.log(`HUGEPFN-RESULT ${JSON.stringify(out, (_, v) => (typeof v === 'bigint' ? hex(v) : v))}`);
