/**
 * Planning one BAR: mappable areas → MSI-X decision → guest size → direct mappings → trapped ranges.
 * The result is relative (no GPAs); `placeBar` (place-bar.ts) adds the guest address.
 */
import { VFIO_REGION_FLAGS } from '../uapi/vfio.js';
import type { BarRegister, RegionDescription } from '../vfio/description.js';
import { hex } from '../errors.js';
import type { DirectMapping, MsixStrategy, PlannedBar, PlannedMsix } from './types.js';
import { mappableAreas } from './mappable-areas.js';
import {
  maxRelocatedBar, describeMsix, msixCutsMappings, msixPageSpans, relocatedGuestSize, relocatedLayout, type MsixInBar,
} from './msix-layout.js';
import { effectiveMapping } from './direct-mappings.js';
import { maxOf, nextPowerOfTwo } from './page-math.js';
import { span, subtractSpans, type Span } from './ranges.js';
import { trappedRanges, type LabelledSpan } from './trapped-ranges.js';

export interface BarInput {
  readonly index: number;
  readonly region: RegionDescription;
  readonly register: BarRegister | undefined;
  readonly msix: MsixInBar | undefined;
  readonly pageSize: bigint;
  readonly strategy: MsixStrategy;
}

/** A planned BAR before it is given a guest address (placeBar adds guestAddress and sizeMask). */
export type RelativeBar = Omit<PlannedBar, 'guestAddress' | 'sizeMask' | 'suspended'> & { readonly warnings: readonly string[] };

/** What to do about the MSI-X structures of a BAR, decided before any mapping is computed. */
interface MsixDecision {
  readonly mode: 'relocate' | 'hole' | 'in-place';
  readonly reason: string;
  readonly warning?: string;
}

export function planRelativeBar(input: BarInput): RelativeBar {
  const { region, pageSize, msix } = input;
  const reasons: string[] = [];
  const warnings: string[] = [];
  const areas = mappableAreas(region);
  reasons.push(areas.reason);
  if (areas.spans.length === 0 && (region.flags & VFIO_REGION_FLAGS.MMAP) === 0) warnings.push(`BAR${input.index}: ${areas.reason}`);

  let spans: Span[] = [...areas.spans];
  // Without MMAP nothing else matters: say so for the whole region, ahead of any MSI-X label.
  const labels: LabelledSpan[] = (region.flags & VFIO_REGION_FLAGS.MMAP) === 0 ? [{ span: span(0n, region.size), reason: areas.reason }] : [];
  let decision: MsixDecision | undefined;
  if (msix) {
    spans = excludeUnmappableMsix(spans, msix, areas, pageSize, reasons, labels);
    decision = decideMsix(input, spans);
    reasons.push(decision.reason);
    if (decision.warning) warnings.push(`BAR${input.index}: ${decision.warning}`);
    if (decision.mode !== 'relocate') {
      const pages = msixPageSpans(msix, pageSize);
      spans = subtractSpans(spans, pages);
      labels.push(...pages.map((p) => ({ span: p, reason: `MSI-X (${describeMsix(msix)}) page emulated by the VMM` })));
    }
  }

  const relocate = decision?.mode === 'relocate' && msix !== undefined;
  const guestSize = relocate ? relocatedGuestSize(region.size, msix, pageSize) : maxOf(nextPowerOfTwo(region.size), pageSize);
  if (guestSize !== region.size) reasons.push(`guest BAR size ${hex(guestSize)} (device region ${hex(region.size)})`);
  if (relocate) labels.unshift({ span: span(guestSize / 2n, guestSize), reason: `relocated MSI-X (${describeMsix(msix)}) in the upper half, emulated by the VMM` });

  const mapped = mapSpans(spans, region, pageSize);
  const mappings = mapped.mappings;
  labels.push(...mapped.labels);
  warnings.push(...mapped.warnings.map((w) => `BAR${input.index}: ${w}`));
  if (mappings.length === 0 && areas.spans.length > 0) warnings.push(`BAR${input.index}: no direct mapping at all; every access is trapped`);

  labels.push({ span: span(region.size, guestSize), reason: `beyond the device region (${hex(region.size)}): emulated by the VMM` });
  const trapped = trappedRanges(guestSize, mappings.map((m) => span(m.barOffset, m.barOffset + m.size)), labels, defaultTrapReason(region, areas.reason));
  return {
    index: input.index,
    regionOffset: region.offset,
    regionSize: region.size,
    guestSize,
    is64Bit: input.register?.is64Bit ?? false,
    prefetchable: input.register?.prefetchable ?? false,
    ...(msix && decision && { msix: plannedMsix(msix, decision, guestSize) }),
    mappings,
    trapped,
    reasons,
    warnings,
  };
}

/** Page-granular direct mappings for the mappable spans; what cannot be mapped becomes a labelled trap. */
function mapSpans(spans: readonly Span[], region: RegionDescription, pageSize: bigint): { mappings: DirectMapping[]; labels: LabelledSpan[]; warnings: string[] } {
  const prot = (region.flags & VFIO_REGION_FLAGS.WRITE) !== 0 ? 'read-write' : 'read';
  const result = { mappings: [] as DirectMapping[], labels: [] as LabelledSpan[], warnings: [] as string[] };
  for (const area of spans) {
    const verdict = effectiveMapping(area, region.size, pageSize);
    if (verdict.kind === 'skip') {
      result.labels.push({ span: area, reason: verdict.reason });
      if (verdict.warning) result.warnings.push(verdict.reason);
      continue;
    }
    result.labels.push(...verdict.leftOut);
    const { start, end } = verdict.mapped;
    result.mappings.push({ fileOffset: start, barOffset: start, size: end - start, prot, reason: verdict.reason });
  }
  return result;
}

/** Without MSIX_MAPPABLE (and no sparse areas already excluding it) the kernel may refuse the table page. */
function excludeUnmappableMsix(spans: Span[], msix: MsixInBar, areas: ReturnType<typeof mappableAreas>, pageSize: bigint, reasons: string[], labels: LabelledSpan[]): Span[] {
  if (areas.msixMappable || areas.sparse || spans.length === 0) return spans;
  const pages = msixPageSpans(msix, pageSize);
  reasons.push('no MSIX_MAPPABLE capability: MSI-X pages excluded from mmap, as the kernel may refuse them');
  labels.push(...pages.map((p) => ({ span: p, reason: `MSI-X page not mmappable (no MSIX_MAPPABLE): emulated` })));
  return subtractSpans(spans, pages);
}

function decideMsix(input: BarInput, spans: readonly Span[]): MsixDecision {
  const msix = input.msix!;
  const what = describeMsix(msix);
  if (!msixCutsMappings(msix, spans, input.pageSize)) {
    const why = spans.length === 0 ? 'nothing else in this BAR is mappable' : 'its pages do not overlap any mappable area';
    return { mode: 'in-place', reason: `MSI-X ${what} stays in place: ${why}` };
  }
  if (input.strategy === 'hole') {
    return { mode: 'hole', reason: `MSI-X ${what}: its pages are cut out of the direct mappings (msix: hole)` };
  }
  const guestSize = relocatedGuestSize(input.region.size, msix, input.pageSize);
  const is64Bit = input.register?.is64Bit ?? false;
  const limit = maxRelocatedBar(is64Bit);
  if (guestSize > limit) {
    const warning = `MSI-X ${what}: relocating would make a ${is64Bit ? '64' : '32'}-bit BAR ${hex(guestSize)} (> ${hex(limit)}); its pages are cut out instead`;
    return { mode: 'hole', reason: warning, warning };
  }
  return { mode: 'relocate', reason: `MSI-X ${what} relocated to the upper half of a ${hex(guestSize)} guest BAR: its pages would cut the direct mapping` };
}

function plannedMsix(msix: MsixInBar, decision: MsixDecision, guestSize: bigint): PlannedMsix {
  const layout = decision.mode === 'relocate' ? relocatedLayout(msix, guestSize) : msix;
  return { ...(layout.table && { table: layout.table }), ...(layout.pba && { pba: layout.pba }), relocated: decision.mode === 'relocate', reason: decision.reason };
}

function defaultTrapReason(region: RegionDescription, areasReason: string): string {
  if ((region.flags & VFIO_REGION_FLAGS.MMAP) === 0) return areasReason;
  return 'not covered by any mappable area: emulated by the VMM';
}
