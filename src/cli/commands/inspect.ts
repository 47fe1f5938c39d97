/** `vfio-bars inspect BDF`: describe a real device and show its plan here and on 4K/16K/64K hosts. */
import { parseArgs } from 'node:util';
import { descriptionToJSON, planBarMappings, planToJSON, realSyscalls, VfioDevice } from '../../index.js'; // the public API only
import { renderDescription, renderPlan } from '../render.js';
import { UsageError } from '../usage.js';

const PAGE_SIZES = [0x1000n, 0x4000n, 0x1_0000n];

export function inspectCommand(args: string[]): string {
  const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
  const [bdf, ...extra] = positionals;
  if (!bdf || extra.length > 0) throw new UsageError('inspect takes exactly one PCI address, e.g. 0000:00:01.0');
  using device = VfioDevice.open(bdf);
  const description = device.describe();
  const hostPage = BigInt(realSyscalls().pageSize());
  const plan = planBarMappings(description, { pageSize: hostPage });
  const elsewhere = PAGE_SIZES.map((pageSize) => ({ pageSize, plan: planBarMappings(description, { pageSize }) }));
  if (values.json) {
    return JSON.stringify({ iommu: device.iommuMode, description: descriptionToJSON(description), plan: planToJSON(plan), byPageSize: elsewhere.map((e) => planToJSON(e.plan)) }, null, 2);
  }
  const summary = elsewhere.map(({ pageSize, plan: p }) => {
    const mapped = p.bars.reduce((sum, b) => sum + b.mappings.reduce((s, m) => s + m.size, 0n), 0n);
    const relocated = p.bars.filter((b) => b.msix?.relocated).map((b) => `BAR${b.index}`);
    return `  ${pageSize / 1024n} KiB pages: ${p.bars.reduce((n, b) => n + b.mappings.length, 0)} direct mapping(s), 0x${mapped.toString(16)} bytes mapped${relocated.length ? `, MSI-X relocated in ${relocated.join(', ')}` : ''}${p.warnings.length ? `, ${p.warnings.length} warning(s)` : ''}`;
  });
  return [renderDescription(description), `IOMMU: ${device.iommuReason}`, '', `plan on this host:`, renderPlan(plan), '', 'on other hosts:', ...summary].join('\n');
}
