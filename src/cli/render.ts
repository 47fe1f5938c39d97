/** Human-readable tables for plans and descriptions (cli-table3). */
import Table from 'cli-table3';
import { hex, type DeviceDescription, type MappingPlan, type PlannedBar } from '../index.js';

const FLAG_NAMES = [[1, 'READ'], [2, 'WRITE'], [4, 'MMAP'], [8, 'CAPS']] as const;

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

function renderBar(bar: PlannedBar): string {
  const where = bar.guestAddress === undefined ? 'relative (no guest address)' : `guest address ${hex(bar.guestAddress)}`;
  const header = `BAR${bar.index}: device region ${hex(bar.regionSize)} (${kib(bar.regionSize)}) -> guest BAR ${hex(bar.guestSize)} (${kib(bar.guestSize)}), ${where}${bar.is64Bit ? ', 64-bit' : ''}${bar.prefetchable ? ', prefetchable' : ''}`;
  const t = table(['kind', 'BAR offset', 'size', 'file offset', 'GPA', 'reason']);
  const rows: { offset: bigint; row: string[] }[] = [
    ...bar.mappings.map((m) => ({ offset: m.barOffset, row: [`direct (${m.prot})`, hex(m.barOffset), hex(m.size), hex(m.fileOffset), m.gpa === undefined ? '-' : hex(m.gpa), m.reason] })),
    ...bar.trapped.map((r) => ({ offset: r.barOffset, row: [`trapped: ${r.kind}`, hex(r.barOffset), hex(r.size), r.fileOffset === undefined ? '-' : hex(r.fileOffset), bar.guestAddress === undefined ? '-' : hex(bar.guestAddress + r.barOffset), r.reason] })),
  ];
  rows.sort((a, b) => (a.offset < b.offset ? -1 : 1)).forEach((r) => t.push(r.row));
  const msix = bar.msix
    ? `  MSI-X as the guest sees it: ${[bar.msix.table && `table at ${hex(bar.msix.table.offset)} (${hex(bar.msix.table.size)} bytes)`, bar.msix.pba && `PBA at ${hex(bar.msix.pba.offset)} (${hex(bar.msix.pba.size)} bytes)`].filter(Boolean).join(', ')}${bar.msix.relocated ? ' [relocated]' : ''}`
    : undefined;
  return [header, `  config-space size mask ${hex(bar.sizeMask)}`, ...(msix ? [msix] : []), t.toString()].join('\n');
}

export function renderDescription(d: DeviceDescription): string {
  const t = table(['region', 'size', 'flags', 'capabilities']);
  for (const r of d.regions) {
    const caps = r.capabilities.map((c) => (c.kind === 'sparse-mmap' ? `SPARSE_MMAP[${c.areas.map((a) => `${hex(a.offset)}+${hex(a.size)}`).join(', ')}]` : c.kind === 'msix-mappable' ? 'MSIX_MAPPABLE' : c.kind === 'type' ? `TYPE ${hex(c.type)}/${c.subtype}` : `id ${c.id}`));
    t.push([regionName(r.index), hex(r.size), regionFlags(r.flags), caps.join(', ') || '-']);
  }
  const id = d.config ? ` ${d.config.vendorId.toString(16).padStart(4, '0')}:${d.config.deviceId.toString(16).padStart(4, '0')} class ${d.config.classCode.toString(16).padStart(6, '0')}` : '';
  const msix = d.msix
    ? `MSI-X: ${d.msix.vectors} vectors, table BAR${d.msix.table.bir} ${hex(d.msix.table.offset)} (${hex(d.msix.table.size)} bytes), PBA BAR${d.msix.pba.bir} ${hex(d.msix.pba.offset)} (${hex(d.msix.pba.size)} bytes)`
    : 'MSI-X: none';
  return [`device ${d.bdf}${id}`, t.toString(), msix].join('\n');
}

function regionName(index: number): string {
  return index <= 5 ? `BAR${index}` : (['ROM', 'CONFIG', 'VGA'][index - 6] ?? `region ${index}`);
}
