// Runs inside the emulated aarch64 host (real vfio-pci, nested KVM) against QEMU's NVMe controller.
// Prints one `VFIOBARS-RESULT {json}` line that the host-side vitest test asserts on.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  BarMapper, GuestMemoryProbe, KvmError, KvmVm, PROT, VfioDevice, cdevOf, descriptionToJSON, planBarMappings, realSyscalls,
} from './lib/dist/index.js';
import * as uapi from './lib/dist/uapi/index.js';
import { probeCdev } from './cdev-probe.mjs';

const hex = (v) => (v === undefined ? undefined : `0x${BigInt(v).toString(16)}`);
const BAR_GPA = 0x40_0000_0000n;
const MOVED_GPA = 0x50_0000_0000n;
const result = { steps: [] };
const step = (name, data) => {
  result.steps.push({ name, ...data });
  console.log(`VFIOBARS-LOG ${name} ${JSON.stringify(data, (_, v) => (typeof v === 'bigint' ? hex(v) : v))}`);
};

function errorInfo(error) {
  return { name: error?.name, code: error?.code, message: String(error?.message ?? error) };
}

/** The bug, with the library's raw calls: a KVM slot the size of the 16 KiB BAR. */
function showNaiveRegistration(device, region, sys) {
  const page = BigInt(sys.pageSize());
  if ((region.flags & 4) === 0) return { skipped: 'region has no MMAP flag' };
  const length = (region.size + page - 1n) / page * page;
  const mapping = sys.mmap(device.fd, region.offset, length, PROT.READ | PROT.WRITE);
  const vm = KvmVm.create();
  try {
    vm.addSlot({ guestPhysAddr: BAR_GPA, memorySize: region.size, userspaceAddr: mapping.address });
    return { registered: hex(region.size) };
  } catch (error) {
    return { error: errorInfo(error), isKvmError: error instanceof KvmError };
  } finally {
    vm.close();
    sys.munmap(mapping);
  }
}

/** The kernel fact behind mmioDmaUnsupported: IOMMU_IOAS_MAP of a BAR mmap (VM_PFNMAP), raw. */
function tryBarDmaMap(device, region, sys) {
  if ((region.flags & 4) === 0) return { skipped: 'region has no MMAP flag' };
  const page = BigInt(sys.pageSize());
  const length = (region.size + page - 1n) / page * page;
  const mapping = sys.mmap(device.fd, region.offset, length, PROT.READ | PROT.WRITE);
  try {
    device.dma.mapDma(BAR_GPA, mapping.address, length, 'read-write');
    device.dma.unmapDma(BAR_GPA, length);
    return { mapped: hex(length) };
  } catch (error) {
    return { error: errorInfo(error) };
  } finally {
    sys.munmap(mapping);
  }
}

/**
 * VMAs of the device fd in this process, from /proc/self/maps: a BAR mapped through a group's device fd
 * shows up as `anon_inode:[vfio-device]`, one mapped through the cdev as `/dev/vfio/devices/vfioN` (6.12).
 */
function deviceMappings() {
  const isDevice = (l) => l.endsWith('anon_inode:[vfio-device]') || /\/dev\/vfio\/devices\/vfio[0-9]+$/.test(l);
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter(isDevice).length;
}

function preadU64(device, region, offset) {
  const b = Buffer.alloc(8);
  device.syscalls.pread(device.fd, b, region.offset + offset);
  return b.readBigUInt64LE(0);
}

function main() {
  const sys = realSyscalls();
  const cmdline = readFileSync('/proc/cmdline', 'utf8');
  result.scenario = /vfiobars\.scenario=(\S+)/.exec(cmdline)?.[1];
  result.pageSize = sys.pageSize();
  result.iommuExpected = cmdline.includes('enable_unsafe_noiommu_mode=1') ? 'noiommu' : 'type1';
  result.node = process.version;
  result.kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  // vfiobars.iommu=auto|iommufd|type1|noiommu: the VfioDevice.open mode under test (default 'auto').
  const iommu = /vfiobars\.iommu=(\S+)/.exec(cmdline)?.[1] ?? 'auto';
  result.iommuRequested = iommu;
  const bdf = process.env.BDF;
  if (!bdf) throw new Error('no NVMe device found');

  // Where the kernel has a VFIO cdev (6.6+), record how it answers the bind protocol's edge cases first.
  const cdev = cdevOf(bdf);
  if (cdev) result.cdevProbe = probeCdev(sys, uapi, { cdev, iommu: '/dev/iommu' });
  const device = VfioDevice.open(bdf, { iommu });
  try {
    runWith(device, sys);
  } finally {
    device.close();
  }
}

function runWith(device, sys) {
  result.iommu = device.iommuMode;
  result.iommuReason = device.iommuReason;
  result.mmioDma = device.dma?.mmioDmaUnsupported;
  const description = device.describe();
  result.description = descriptionToJSON(description);
  const region = description.regions.find((r) => r.index === 0);
  result.bar0 = { size: hex(region.size), flags: region.flags, caps: region.capabilities.map((c) => c.kind) };
  result.msix = description.msix && {
    vectors: description.msix.vectors,
    table: hex(description.msix.table.offset),
    pba: hex(description.msix.pba.offset),
    bir: description.msix.table.bir,
  };

  step('naive', showNaiveRegistration(device, region, sys));
  if (device.iommuMode === 'iommufd') step('iommufd-bar-dma', tryBarDmaMap(device, region, sys));

  const plan = planBarMappings(description, { pageSize: result.pageSize, barAddresses: { 0: BAR_GPA } });
  const bar = plan.bars.find((b) => b.index === 0);
  result.plan = {
    guestSize: hex(bar.guestSize),
    mappings: bar.mappings.map((m) => ({ size: hex(m.size), gpa: hex(m.gpa), reason: m.reason })),
    trapped: bar.trapped.map(
      (t) => ({
        offset: hex(t.barOffset),
        size: hex(t.size),
        kind: t.kind,
        ...(t.fileOffset !== undefined && { fileOffset: hex(t.fileOffset) }),
        cause: t.cause,
        reason: t.reason,
      })
    ),
    msix: bar.msix && { table: hex(bar.msix.table?.offset), pba: hex(bar.msix.pba?.offset), relocated: bar.msix.relocated },
    warnings: plan.warnings,
  };

  const vm = KvmVm.create();
  try {
    const probe = GuestMemoryProbe.create(vm);
    mapAndProbe(device, vm, probe, plan, bar, region);
    probe.close();
  } finally {
    vm.close();
  }
  result.ok = true;
}

function mapAndProbe(device, vm, probe, plan, bar, region) {
  // Ask for DMA maps wherever there is an IOMMU: where BARs cannot be DMA-mapped (iommufd without dma-buf
  // export), the mapper must say so in one warning and map them without DMA.
  const dmaMap = device.dma !== undefined;
  const warnings = [];
  const logger = { debug() {}, info() {}, warn: (m) => warnings.push(m) };
  const mapper = new BarMapper(device, vm, { dmaMap, logger });
  mapper.map(plan);
  result.dmaMap = dmaMap;
  result.mapperWarnings = warnings;
  result.slotsAfterMap = vm.slotCount - 1; // minus the probe's code page
  result.deviceMappingsAfterMap = deviceMappings();

  const host = { cap: preadU64(device, region, 0n), vs: preadU64(device, region, 8n) & 0xffff_ffffn };
  result.host = { cap: hex(host.cap), vs: hex(host.vs) };
  const read = (gpa, width) => {
    const r = probe.read(gpa, width);
    return r.kind === 'value' ? { value: hex(r.value) } : { mmio: hex(r.address) };
  };
  result.guest = { cap: read(BAR_GPA, 8), vs: read(BAR_GPA + 8n, 4) };
  if (bar.msix?.table) result.guest.msixTable = read(BAR_GPA + bar.msix.table.offset, 4);

  const moved = mapper.move(0, MOVED_GPA);
  result.move = { state: moved.state, cap: read(MOVED_GPA, 8), old: read(BAR_GPA, 4) };

  mapper.unmapAll();
  result.afterUnmap = { slots: vm.slotCount - 1, mappedBars: mapper.bars.size, deviceMappings: deviceMappings(), read: read(MOVED_GPA, 4) };
}

/** A second real device with MSI-X in its own BAR: every BAR planned and mapped, registers read by a vCPU. */
function e1000eFlow(bdf, sys) {
  const device = VfioDevice.open(bdf);
  try {
    const description = device.describe();
    const pageSize = sys.pageSize();
    const relative = planBarMappings(description, { pageSize });
    // Naturally aligned guest addresses, largest BAR first, as a guest's BAR allocator would place them:
    // 64-bit BARs high, 32-bit BARs (all of e1000e's) below 4 GiB, where the planner requires them.
    const addresses = new Map();
    const next = { high: 0x60_0000_0000n, low: 0x8000_0000n };
    for (const bar of [...relative.bars].sort((a, b) => (a.guestSize > b.guestSize ? -1 : 1))) {
      const window = bar.is64Bit ? 'high' : 'low';
      const at = ((next[window] + bar.guestSize - 1n) / bar.guestSize) * bar.guestSize;
      addresses.set(bar.index, at);
      next[window] = at + bar.guestSize;
    }
    const plan = planBarMappings(description, { pageSize, barAddresses: addresses });
    const out = {
      description: descriptionToJSON(description),
      msix: description.msix && {
        bir: description.msix.table.bir,
        table: hex(description.msix.table.offset),
        pbaBir: description.msix.pba.bir,
        pba: hex(description.msix.pba.offset),
        vectors: description.msix.vectors,
      },
      bars: plan.bars.map(
        (b) => ({
          index: b.index,
          regionSize: hex(b.regionSize),
          guestSize: hex(b.guestSize),
          mappings: b.mappings.map((m) => hex(m.size)),
          msix: b.msix && { relocated: b.msix.relocated, table: hex(b.msix.table?.offset), pba: hex(b.msix.pba?.offset) },
        })
      ),
      skipped: plan.skipped,
      warnings: plan.warnings,
    };
    const vm = KvmVm.create();
    try {
      const probe = GuestMemoryProbe.create(vm);
      const mapper = new BarMapper(device, vm, { dmaMap: device.dma !== undefined });
      mapper.map(plan);
      const readBoth = (index, offset) => {
        const bar = plan.bars.find((b) => b.index === index);
        const region = description.regions.find((r) => r.index === index);
        const b = Buffer.alloc(4);
        device.syscalls.pread(device.fd, b, region.offset + offset);
        const guest = probe.read(bar.guestAddress + offset, 4);
        return { device: hex(b.readUInt32LE(0)), guest: guest.kind === 'value' ? hex(guest.value) : `mmio ${hex(guest.address)}` };
      };
      out.reads = { bar0Status: readBoth(0, 0x8n), bar1Flash: readBoth(1, 0n) };
      const msixBar = plan.bars.find((b) => b.msix?.table);
      if (msixBar) {
        const r = probe.read(msixBar.guestAddress + msixBar.msix.table.offset, 4);
        out.reads.msixTable = r.kind === 'mmio' ? 'mmio' : hex(r.value);
      }
      out.slots = vm.slotCount - 1;
      mapper.unmapAll();
      out.slotsAfterUnmap = vm.slotCount - 1;
      probe.close();
    } finally {
      vm.close();
    }
    result.e1000e = out;
  } finally {
    device.close();
  }
}

/** The operator's commands on the same real device (after main() released it: a group has one owner). */
function runCli() {
  const cli = (...args) => spawnSync(process.execPath, ['/test/lib/bin/vfio-bars.js', ...args], { encoding: 'utf8' });
  const inspect = cli('inspect', process.env.BDF);
  const map = cli('map', process.env.BDF, '--verify', '--json');
  result.cli = {
    inspect: { exit: inspect.status, output: inspect.stdout + inspect.stderr },
    map: { exit: map.status, json: map.stdout ? JSON.parse(map.stdout) : undefined, output: map.stderr },
  };
}

try {
  main();
  if (result.ok) runCli();
  if (result.ok && process.env.E1000E_BDF) e1000eFlow(process.env.E1000E_BDF, realSyscalls());
} catch (error) {
  result.ok = false;
  result.error = { ...errorInfo(error), stack: error?.stack };
}
console.log(`VFIOBARS-RESULT ${JSON.stringify(result, (_, v) => (typeof v === 'bigint' ? hex(v) : v))}`);
