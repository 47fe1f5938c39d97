/**
 * `vfio-bars map BDF [--verify]`: create a KVM VM, map every BAR, and optionally have a vCPU read each
 * direct mapping and compare with what pread of the device returns — a self-test for a new host.
 */
import { parseArgs } from 'node:util';
import { BarMapper, GuestMemoryProbe, hex, KvmVm, planBarMappings, realSyscalls, VfioDevice, type MappingPlan, type PlannedBar, type TrappedRange } from '../../index.js'; // the public API only
import { UsageError } from '../usage.js';

/** Guest MMIO window for the self-test; below 4 GiB so the x86 probe (32-bit addressing) reaches it. */
const MMIO_BASE = 0xc000_0000n;
const PROBE_CODE_GPA = 0x7ff0_0000n;

interface Check { bar: number; gpa: bigint; guest: bigint | 'mmio'; device: bigint; ok: boolean }

export function mapCommand(args: string[]): { output: string; ok: boolean } {
  const { values, positionals } = parseArgs({ args, options: { verify: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
  const [bdf, ...extra] = positionals;
  if (!bdf || extra.length > 0) throw new UsageError('map takes exactly one PCI address, e.g. 0000:00:01.0');
  using device = VfioDevice.open(bdf);
  const description = device.describe();
  const pageSize = BigInt(realSyscalls().pageSize());
  const relative = planBarMappings(description, { pageSize });
  const plan = planBarMappings(description, { pageSize, barAddresses: assignGuestAddresses(relative) });
  using vm = KvmVm.create();
  using mapper = new BarMapper(device, vm);
  mapper.map(plan);
  const checks = values.verify ? verify(vm, device, plan) : [];
  const ok = checks.every((c) => c.ok);
  if (values.json) {
    return { ok, output: JSON.stringify({ bdf, pageSize: hex(pageSize), slots: vm.slotCount, bars: plan.bars.map((b) => ({ index: b.index, guestAddress: hex(b.guestAddress!), mappings: b.mappings.length, trapped: b.trapped.map(trappedJSON) })), checks: checks.map((c) => ({ ...c, gpa: hex(c.gpa), guest: c.guest === 'mmio' ? 'mmio' : hex(c.guest), device: hex(c.device) })) }, null, 2) };
  }
  const lines = plan.bars.map((b) => `BAR${b.index}: ${b.mappings.length} direct mapping(s) at ${hex(b.guestAddress!)}, ${b.trapped.length} trapped range(s)`);
  lines.push(...checks.map((c) => `verify BAR${c.bar} gpa ${hex(c.gpa)}: guest read ${c.guest === 'mmio' ? 'an MMIO exit' : hex(c.guest)}, device ${hex(c.device)} ${c.ok ? 'OK' : 'MISMATCH'}`));
  lines.push(ok ? `mapped ${vm.slotCount} KVM slot(s)${values.verify ? ', verified' : ''}` : 'verification FAILED');
  return { ok, output: lines.join('\n') };
}

/** Naturally aligned guest addresses for every planned BAR, largest first, packed from MMIO_BASE. */
function assignGuestAddresses(plan: MappingPlan): Map<number, bigint> {
  const addresses = new Map<number, bigint>();
  let next = MMIO_BASE;
  for (const bar of [...plan.bars].sort((a, b) => (a.guestSize > b.guestSize ? -1 : 1))) {
    next = (next + bar.guestSize - 1n) / bar.guestSize * bar.guestSize;
    addresses.set(bar.index, next);
    next += bar.guestSize;
  }
  return addresses;
}

function verify(vm: KvmVm, device: VfioDevice, plan: MappingPlan): Check[] {
  using probe = GuestMemoryProbe.create(vm, { codeGpa: PROBE_CODE_GPA });
  return plan.bars.flatMap((bar) => bar.mappings.map((m) => checkOne(probe, device, bar, m.fileOffset, m.gpa!)));
}

function checkOne(probe: GuestMemoryProbe, device: VfioDevice, bar: PlannedBar, fileOffset: bigint, gpa: bigint): Check {
  const result = probe.read(gpa, 4);
  const buffer = Buffer.alloc(4);
  device.syscalls.pread(device.fd, buffer, bar.regionOffset + fileOffset);
  const deviceValue = BigInt(buffer.readUInt32LE(0));
  const guest = result.kind === 'value' ? result.value : 'mmio';
  return { bar: bar.index, gpa, guest, device: deviceValue, ok: guest === deviceValue };
}

/** What backs each trapped range, for `--json` (the plan JSON's trapped entries without their prose). */
function trappedJSON(t: TrappedRange): Record<string, string> {
  return { barOffset: hex(t.barOffset), size: hex(t.size), kind: t.kind, ...(t.fileOffset !== undefined && { fileOffset: hex(t.fileOffset) }), cause: t.cause };
}
