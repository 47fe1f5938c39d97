/**
 * `vfio-bars map BDF [--verify]`: create a scratch KVM VM, map every BAR as a VMM would (the same --iommu,
 * --msix and --dma-map choices), and optionally have a vCPU read each direct mapping back and compare it
 * with pread of the device: a self-test for a new host. Everything is released before the command returns.
 */
import { parseArgs } from 'node:util';
// The public API only.
import { BarMapper, GuestMemoryProbe, hex, KvmVm, planBarMappings, type MappingPlan, type TrappedRange } from '../../index.js';
import type { CliDevice, CliEnvironment } from '../environment.js';
import { openVfioDevice } from '../open-device.js';
import { PROBE_CODE_GPA, assignGuestAddresses } from '../self-test-layout.js';
import { parseBdfArgument, parseIommu, parseMsixStrategy } from '../usage.js';
import { verifyMappings, type VerifyCheck, type VerifyReport } from '../verify-mappings.js';

const OPTIONS = {
  verify: { type: 'boolean', default: false },
  msix: { type: 'string' },
  iommu: { type: 'string' },
  'dma-map': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

interface MapRun {
  readonly bdf: string;
  readonly device: CliDevice;
  readonly pageSize: bigint;
  readonly plan: MappingPlan;
  readonly slots: number;
  readonly dmaMapped: boolean;
  readonly report: VerifyReport | undefined;
}

/**
 * `vfio-bars map BDF`: maps, optionally verifies, releases; the report goes to stdout whether or not verification
 * passed, and `ok` decides the exit code (0 or 1).
 * @throws {UsageError} for bad options; VfioError, KvmError, MapError, CliError NO_ROOM_BELOW_4G when mapping fails.
 */
export function mapCommand(args: string[], env: CliEnvironment): { output: string; ok: boolean } {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  const bdf = parseBdfArgument('map', positionals);
  const iommu = parseIommu(values.iommu);
  const msix = parseMsixStrategy(values.msix);
  using device = openVfioDevice(env, bdf, iommu);
  env.progress.step(`describing ${bdf}`);
  const description = device.describe();
  const pageSize = env.hostPageSize();
  const relative = planBarMappings(description, { pageSize, msix });
  const plan = planBarMappings(description, { pageSize, msix, barAddresses: assignGuestAddresses(relative) });
  using vm = KvmVm.create();
  using mapper = new BarMapper(device, vm, { dmaMap: values['dma-map'] });
  env.progress.step(`mapping ${plan.bars.length} BAR(s) into a scratch VM`);
  mapper.map(plan);
  let report: VerifyReport | undefined;
  if (values.verify) {
    env.progress.step('verifying: a vCPU reads every direct mapping');
    using probe = GuestMemoryProbe.create(vm, { codeGpa: PROBE_CODE_GPA });
    report = verifyMappings(probe, device, description, plan);
  }
  env.progress.done();
  const run: MapRun = { bdf, device, pageSize, plan, slots: vm.slotCount, dmaMapped: values['dma-map'], report };
  return { ok: report?.ok ?? true, output: values.json ? JSON.stringify(mapReportJSON(run), null, 2) : mapReportText(run) };
}

function checkJSON(c: VerifyCheck): unknown {
  const guest = c.guest === 'mmio' ? 'mmio' : hex(c.guest);
  return { bar: c.bar, deviceOffset: hex(c.deviceOffset), gpa: hex(c.gpa), guest, device: hex(c.device), ok: c.ok };
}

function mapReportJSON(run: MapRun): unknown {
  const bars = run.plan.bars.map((b) => ({
    index: b.index, guestAddress: hex(b.guestAddress!), mappings: b.mappings.length, trapped: b.trapped.map(trappedJSON),
  }));
  const verify = run.report && {
    ok: run.report.ok,
    checks: run.report.checks.map(checkJSON),
    notCompared: run.report.notCompared.map((n) => ({ ...n, deviceOffset: hex(n.deviceOffset), size: hex(n.size) })),
  };
  const { bdf, pageSize, slots, dmaMapped } = run;
  return { bdf, iommu: run.device.iommuMode, pageSize: hex(pageSize), slots, dmaMapped, bars, verify };
}

/** What backs each trapped range, for `--json` (the plan JSON's trapped entries without their prose). */
function trappedJSON(t: TrappedRange): Record<string, string> {
  const fileOffset: Record<string, string> = t.fileOffset === undefined ? {} : { fileOffset: hex(t.fileOffset) };
  return { barOffset: hex(t.barOffset), size: hex(t.size), kind: t.kind, ...fileOffset, cause: t.cause };
}

function checkLine(c: VerifyCheck): string {
  const guest = c.guest === 'mmio' ? 'an MMIO exit' : hex(c.guest);
  const verdict = c.ok ? 'OK' : 'MISMATCH';
  return `verify BAR${c.bar}+${hex(c.deviceOffset)} at gpa ${hex(c.gpa)}: guest read ${guest}, device ${hex(c.device)} ${verdict}`;
}

function mapReportText(run: MapRun): string {
  const lines = run.plan.bars.map((b) =>
    `BAR${b.index}: ${b.mappings.length} direct mapping(s) at ${hex(b.guestAddress!)}, ${b.trapped.length} trapped range(s)`);
  const report = run.report;
  if (report) {
    lines.push(...report.checks.map(checkLine));
    lines.push(...report.notCompared.map((n) =>
      `not compared: BAR${n.bar}+${hex(n.deviceOffset)} (${hex(n.size)} bytes, ${n.what}): ${n.reason}`));
  }
  const dma = run.dmaMapped ? `, DMA-mapped through ${run.device.iommuMode}` : '';
  lines.push(report && !report.ok ? 'verification FAILED' : `mapped ${run.slots} KVM slot(s)${dma}${report ? ', verified' : ''}`);
  return lines.join('\n');
}
