/** `vfio-bars inspect BDF`: describe a real device and show its plan here and on 4K/16K/64K hosts. */
import { parseArgs } from 'node:util';
import { descriptionToJSON, hex, planBarMappings, planToJSON, type MappingPlan } from '../../index.js'; // the public API only
import type { CliDevice, CliEnvironment } from '../environment.js';
import { openVfioDevice } from '../open-device.js';
import { renderDescription, renderPlan } from '../render.js';
import { parseBdfArgument, parseIommu, parseMsixStrategy } from '../usage.js';

const PAGE_SIZES = [0x1000n, 0x4000n, 0x1_0000n];

const OPTIONS = {
  msix: { type: 'string' },
  iommu: { type: 'string' },
  'dma-map': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

function mappedBytes(plan: MappingPlan): bigint {
  return plan.bars.reduce((sum, b) => sum + b.mappings.reduce((s, m) => s + m.size, 0n), 0n);
}

function directMappingCount(plan: MappingPlan): number {
  return plan.bars.reduce((n, b) => n + b.mappings.length, 0);
}

function summaryLine(pageSize: bigint, plan: MappingPlan): string {
  const relocated = plan.bars.filter((b) => b.msix?.relocated).map((b) => `BAR${b.index}`);
  const parts = [`${directMappingCount(plan)} direct mapping(s)`, `${hex(mappedBytes(plan))} bytes mapped`];
  if (relocated.length > 0) parts.push(`MSI-X relocated in ${relocated.join(', ')}`);
  if (plan.warnings.length > 0) parts.push(`${plan.warnings.length} warning(s)`);
  return `  ${pageSize / 1024n} KiB pages: ${parts.join(', ')}`;
}

/** What `map --dma-map` (or a VMM without a vIOMMU) would DMA-map through this device's IOMMU. */
function dmaLine(device: CliDevice, plan: MappingPlan, dmaMap: boolean): string {
  if (!dmaMap) return 'DMA mapping: off (--dma-map maps each direct mapping at its guest address, as VMMs without a vIOMMU do)';
  if (device.dma === undefined) {
    return 'DMA mapping: requested, but noiommu mode has no IOMMU to program (the device uses host physical addresses)';
  }
  return `DMA mapping: ${directMappingCount(plan)} direct mapping(s), ${hex(mappedBytes(plan))} bytes, through ${device.dma.kind}`;
}

/**
 * `vfio-bars inspect BDF`: the device's regions, capabilities and MSI-X, its plan on this host and a summary
 * for 4/16/64 KiB pages, with the IOMMU and DMA-mapping choices spelled out.
 * @throws {UsageError} for bad options; VfioError when the device cannot be opened or described.
 */
export function inspectCommand(args: string[], env: CliEnvironment): string {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  const bdf = parseBdfArgument('inspect', positionals);
  const iommu = parseIommu(values.iommu);
  const msix = parseMsixStrategy(values.msix);
  using device = openVfioDevice(env, bdf, iommu);
  env.progress.step(`describing ${bdf}`);
  const description = device.describe();
  const plan = planBarMappings(description, { pageSize: env.hostPageSize(), msix });
  const elsewhere = PAGE_SIZES.map((pageSize) => ({ pageSize, plan: planBarMappings(description, { pageSize, msix }) }));
  env.progress.done();
  if (values.json) {
    return JSON.stringify({
      iommu: device.iommuMode,
      dmaMap: values['dma-map'] && device.dma !== undefined,
      description: descriptionToJSON(description),
      plan: planToJSON(plan),
      byPageSize: elsewhere.map((e) => planToJSON(e.plan)),
    }, null, 2);
  }
  const iommuLine = `IOMMU: ${device.iommuReason ?? device.iommuMode}`;
  const summary = elsewhere.map(({ pageSize, plan: p }) => summaryLine(pageSize, p));
  const dma = dmaLine(device, plan, values['dma-map']);
  const here = ['plan on this host:', renderPlan(plan)];
  return [renderDescription(description), iommuLine, dma, '', ...here, '', 'on other hosts:', ...summary].join('\n');
}
