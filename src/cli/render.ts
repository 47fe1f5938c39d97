/** Human-readable tables for plans and descriptions (cli-table3). */
import Table from 'cli-table3';
import { VFIO_REGION_FLAGS, hex, type DeviceDescription, type MappingPlan, type PlannedBar } from '../index.js';
import { byBigint } from '../util/compare.js';

const FLAG_NAMES = Object.entries(VFIO_REGION_FLAGS).map(([name, bit]) => [bit, name] as const);

export function regionFlags(flags: number): string {
  return FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name).join('|') || '-';
}

function kib(size: bigint): string {
  return size >= 1024n && size % 1024n === 0n ? `${size / 1024n} KiB` : `${size} B`;
}

function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] }, wordWrap: true, colWidths: head.map((h) => (h === 'reason' ? 64 : null)) });
}

export function renderPlan(plan: MappingPlan): string {
  const out: string[] = [`host page size ${hex(plan.pageSize)} (${kib(plan.pageSize)}), MSI-X strategy: ${plan.msixStrategy}`];
  for (const bar of plan.bars) out.push('', renderBar(bar));
  if (plan.skipped.length > 0) out.push('', `not planned: ${plan.skipped.map((s) => `BAR${s.index} (${s.reason})`).join('; ')}`);
  if (plan.warnings.length > 0) out.push('', 'warnings:', ...plan.warnings.map((w) => `  ! BAR${w.bar}: ${w.message} [${w.code}]`));
  return out.join('\n');
}

/** One table row, keyed by BAR offset so direct and trapped rows interleave in address order. */
interface BarRow { offset: bigint; row: string[] }

function hexOrDash(value: bigint | undefined): string {
  return value === undefined ? '-' : hex(value);
}

function barHeader(bar: PlannedBar): string {
  const where = bar.guestAddress === undefined ? 'relative (no guest address)' : `guest address ${hex(bar.guestAddress)}`;
  const traits = `${bar.is64Bit ? ', 64-bit' : ''}${bar.prefetchable ? ', prefetchable' : ''}`;
  const device = `device region ${hex(bar.regionSize)} (${kib(bar.regionSize)})`;
  return `BAR${bar.index}: ${device} -> guest BAR ${hex(bar.guestSize)} (${kib(bar.guestSize)}), ${where}${traits}`;
}

function directRow(m: PlannedBar['mappings'][number]): BarRow {
  return { offset: m.barOffset, row: [`direct (${m.prot})`, hex(m.barOffset), hex(m.size), hex(m.fileOffset), hexOrDash(m.gpa), m.reason] };
}

function trappedRow(bar: PlannedBar, r: PlannedBar['trapped'][number]): BarRow {
  const gpa = bar.guestAddress === undefined ? undefined : bar.guestAddress + r.barOffset;
  const row = [`trapped: ${r.kind}`, hex(r.barOffset), hex(r.size), hexOrDash(r.fileOffset), hexOrDash(gpa), r.reason];
  return { offset: r.barOffset, row };
}

function guestMsixLine(msix: NonNullable<PlannedBar['msix']>): string {
  const parts = [
    msix.table && `table at ${hex(msix.table.offset)} (${hex(msix.table.size)} bytes)`,
    msix.pba && `PBA at ${hex(msix.pba.offset)} (${hex(msix.pba.size)} bytes)`,
  ];
  return `  MSI-X as the guest sees it: ${parts.filter(Boolean).join(', ')}${msix.relocated ? ' [relocated]' : ''}`;
}

function renderBar(bar: PlannedBar): string {
  const t = table(['kind', 'BAR offset', 'size', 'file offset', 'GPA', 'reason']);
  const rows = [...bar.mappings.map(directRow), ...bar.trapped.map((r) => trappedRow(bar, r))];
  rows.sort(byBigint((r) => r.offset)).forEach((r) => t.push(r.row));
  const msix = bar.msix ? [guestMsixLine(bar.msix)] : [];
  return [barHeader(bar), `  config-space size mask ${hex(bar.sizeMask)}`, ...msix, t.toString()].join('\n');
}

type Capability = DeviceDescription['regions'][number]['capabilities'][number];

function capabilityName(c: Capability): string {
  switch (c.kind) {
    case 'sparse-mmap': return `SPARSE_MMAP[${c.areas.map((a) => `${hex(a.offset)}+${hex(a.size)}`).join(', ')}]`;
    case 'msix-mappable': return 'MSIX_MAPPABLE';
    case 'type': return `TYPE ${hex(c.type)}/${c.subtype}`;
    default: return `id ${c.id}`;
  }
}

function hexDigits(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}

function deviceIdentity(config: DeviceDescription['config']): string {
  if (!config) return '';
  return ` ${hexDigits(config.vendorId, 4)}:${hexDigits(config.deviceId, 4)} class ${hexDigits(config.classCode, 6)}`;
}

function deviceMsixLine(msix: DeviceDescription['msix']): string {
  if (!msix) return 'MSI-X: none';
  const table = `table BAR${msix.table.bir} ${hex(msix.table.offset)} (${hex(msix.table.size)} bytes)`;
  const pba = `PBA BAR${msix.pba.bir} ${hex(msix.pba.offset)} (${hex(msix.pba.size)} bytes)`;
  return `MSI-X: ${msix.vectors} vectors, ${table}, ${pba}`;
}

export function renderDescription(d: DeviceDescription): string {
  const t = table(['region', 'size', 'flags', 'capabilities']);
  for (const r of d.regions) {
    const caps = r.capabilities.map(capabilityName);
    t.push([regionName(r.index), hex(r.size), regionFlags(r.flags), caps.join(', ') || '-']);
  }
  return [`device ${d.bdf}${deviceIdentity(d.config)}`, t.toString(), deviceMsixLine(d.msix)].join('\n');
}

function regionName(index: number): string {
  return index <= 5 ? `BAR${index}` : (['ROM', 'CONFIG', 'VGA'][index - 6] ?? `region ${index}`);
}
