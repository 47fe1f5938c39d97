/**
 * Planning one BAR: mappable areas → MSI-X decision → guest size → direct mappings → trapped ranges.
 * The result is relative (no GPAs); `placeBar` (place-bar.ts) adds the guest address.
 */
import { VFIO_REGION_FLAGS } from '../uapi/vfio.js';
import type { BarRegister, RegionDescription } from '../vfio/description.js';
import { hex } from '../errors.js';
import type { BarNote, DirectMapping, MsixStrategy, PlannedBar, PlannedMsix, PlanWarning, PlanWarningCode } from './types.js';
import { mappableAreas, type MappableAreas } from './mappable-areas.js';
import {
  maxRelocatedBar, describeMsix, msixCutsMappings, msixPageSpans, relocatedGuestSize, relocatedLayout, type MsixInBar,
} from './msix-layout.js';
import { effectiveMapping } from './direct-mappings.js';
import { maxOf, nextPowerOfTwo } from './page-math.js';
import { span, subtractSpans, type Span } from './ranges.js';
import { trappedRanges, type BarGeometry, type TrapLabel } from './trapped-ranges.js';

export interface BarInput {
  readonly index: number;
  readonly region: RegionDescription;
  readonly register: BarRegister | undefined;
  readonly msix: MsixInBar | undefined;
  readonly pageSize: bigint;
  readonly strategy: MsixStrategy;
}

/** A planned BAR before it is given a guest address (placeBar adds guestAddress and sizeMask). */
export type RelativeBar = Omit<PlannedBar, 'guestAddress' | 'sizeMask' | 'suspended'> & { readonly warnings: readonly PlanWarning[] };

/** What to do about the MSI-X structures of a BAR, decided before any mapping is computed. */
interface MsixDecision {
  readonly mode: 'relocate' | 'hole' | 'in-place';
  readonly note: BarNote;
  readonly warning?: boolean;
}

/** Collects a BAR's notes and warnings while it is planned. */
class Notes {
  readonly reasons: BarNote[] = [];
  readonly warnings: PlanWarning[] = [];
  constructor(private readonly bar: number) {}
  note(note: BarNote): void {
    this.reasons.push(note);
  }
  warn(code: PlanWarningCode, message: string): void {
    this.warnings.push({ bar: this.bar, code, message });
  }
}

export function planRelativeBar(input: BarInput): RelativeBar {
  const { region, pageSize, msix } = input;
  const notes = new Notes(input.index);
  const areas = mappableAreas(region);
  notes.note({ code: areas.code, message: areas.reason });
  const noMmap = (region.flags & VFIO_REGION_FLAGS.MMAP) === 0;
  if (noMmap) notes.warn('no-mmap', areas.reason);

  let spans: Span[] = [...areas.spans];
  // Without MMAP nothing else matters: say so for the whole region, ahead of any MSI-X label.
  const labels: TrapLabel[] = noMmap ? [{ span: span(0n, region.size), cause: 'no-mmap', why: 'region has no MMAP flag' }] : [];
  let decision: MsixDecision | undefined;
  if (msix) {
    spans = excludeUnmappableMsix(spans, msix, areas, pageSize, notes, labels);
    decision = decideMsix(input, spans);
    notes.note(decision.note);
    if (decision.warning) notes.warn('msix-relocation-refused', decision.note.message);
    if (decision.mode !== 'relocate') {
      const pages = msixPageSpans(msix, pageSize);
      spans = subtractSpans(spans, pages);
      labels.push(...pages.map((p): TrapLabel => ({ span: p, cause: 'msix-page', why: `on an MSI-X page (${describeMsix(msix)})` })));
    }
  }

  const relocate = decision?.mode === 'relocate' && msix !== undefined;
  const guestSize = relocate ? relocatedGuestSize(region.size, msix, pageSize) : maxOf(nextPowerOfTwo(region.size), pageSize);
  if (guestSize !== region.size) notes.note({ code: 'guest-size', message: `guest BAR size ${hex(guestSize)} (device region ${hex(region.size)})` });
  if (relocate) labels.unshift({ span: span(guestSize / 2n, guestSize), cause: 'msix-relocated', why: `relocated MSI-X (${describeMsix(msix)}) in the upper half` });

  const mapped = mapSpans(spans, region, pageSize, notes);
  const mappings = mapped.mappings;
  labels.push(...mapped.labels);
  if (mappings.length === 0 && areas.spans.length > 0) notes.warn('no-direct-mapping', 'no direct mapping at all; every access is trapped');

  labels.push({ span: span(region.size, guestSize), cause: 'beyond-region', why: `beyond the device region (${hex(region.size)})` });
  const planned = msix && decision ? plannedMsix(msix, decision, guestSize) : undefined;
  const geometry: BarGeometry = {
    regionSize: region.size,
    guestSize,
    ...(msix && planned && { msix: { guest: planned, device: msix, relocated: planned.relocated } }),
  };
  const fallback = noMmap ? { cause: 'no-mmap' as const, why: 'region has no MMAP flag' } : { cause: 'outside-sparse-areas' as const, why: 'not inside any SPARSE_MMAP area' };
  const trapped = trappedRanges(geometry, mappings.map((m) => span(m.barOffset, m.barOffset + m.size)), labels, fallback);
  return {
    index: input.index,
    regionOffset: region.offset,
    regionSize: region.size,
    guestSize,
    is64Bit: input.register?.is64Bit ?? false,
    prefetchable: input.register?.prefetchable ?? false,
    ...(planned && { msix: planned }),
    mappings,
    trapped,
    reasons: notes.reasons,
    warnings: notes.warnings,
  };
}

/** Page-granular direct mappings for the mappable spans; what cannot be mapped becomes a labelled trap. */
function mapSpans(spans: readonly Span[], region: RegionDescription, pageSize: bigint, notes: Notes): { mappings: DirectMapping[]; labels: TrapLabel[] } {
  const prot = (region.flags & VFIO_REGION_FLAGS.WRITE) !== 0 ? 'read-write' : 'read';
  const result = { mappings: [] as DirectMapping[], labels: [] as TrapLabel[] };
  for (const area of spans) {
    const verdict = effectiveMapping(area, region.size, pageSize);
    if (verdict.kind === 'skip') {
      result.labels.push({ span: area, cause: 'sub-page-unmappable', why: verdict.reason });
      notes.warn('sub-page-unmappable', `${verdict.reason}: trapped`);
      continue;
    }
    result.labels.push(...verdict.leftOut.map((l): TrapLabel => ({ span: l.span, cause: 'unaligned-edge', why: l.reason })));
    const { start, end } = verdict.mapped;
    result.mappings.push({ fileOffset: start, barOffset: start, size: end - start, prot, reason: verdict.reason });
  }
  return result;
}

/** Without MSIX_MAPPABLE (and no sparse areas already excluding it) the kernel may refuse the table page. */
function excludeUnmappableMsix(spans: Span[], msix: MsixInBar, areas: MappableAreas, pageSize: bigint, notes: Notes, labels: TrapLabel[]): Span[] {
  if (areas.msixMappable || areas.sparse || spans.length === 0) return spans;
  const pages = msixPageSpans(msix, pageSize);
  notes.note({ code: 'msix-not-mmappable', message: 'no MSIX_MAPPABLE capability: MSI-X pages excluded from mmap, as the kernel may refuse them' });
  labels.push(...pages.map((p): TrapLabel => ({ span: p, cause: 'msix-not-mmappable', why: 'MSI-X page not mmappable (no MSIX_MAPPABLE)' })));
  return subtractSpans(spans, pages);
}

function decideMsix(input: BarInput, spans: readonly Span[]): MsixDecision {
  const msix = input.msix!;
  const what = describeMsix(msix);
  if (!msixCutsMappings(msix, spans, input.pageSize)) {
    const why = spans.length === 0 ? 'nothing else in this BAR is mappable' : 'its pages do not overlap any mappable area';
    return { mode: 'in-place', note: { code: 'msix-in-place', message: `MSI-X ${what} stays in place: ${why}` } };
  }
  if (input.strategy === 'hole') {
    return { mode: 'hole', note: { code: 'msix-hole', message: `MSI-X ${what}: its pages are cut out of the direct mappings (msix: hole)` } };
  }
  const guestSize = relocatedGuestSize(input.region.size, msix, input.pageSize);
  const is64Bit = input.register?.is64Bit ?? false;
  const limit = maxRelocatedBar(is64Bit);
  if (guestSize > limit) {
    const message = `MSI-X ${what}: relocating would make a ${is64Bit ? '64' : '32'}-bit BAR ${hex(guestSize)} (> ${hex(limit)}); its pages are cut out instead`;
    return { mode: 'hole', note: { code: 'msix-relocation-refused', message }, warning: true };
  }
  const message = `MSI-X ${what} relocated to the upper half of a ${hex(guestSize)} guest BAR: its pages would cut the direct mapping`;
  return { mode: 'relocate', note: { code: 'msix-relocated', message } };
}

function plannedMsix(msix: MsixInBar, decision: MsixDecision, guestSize: bigint): PlannedMsix {
  const layout = decision.mode === 'relocate' ? relocatedLayout(msix, guestSize) : msix;
  const relocated = decision.mode === 'relocate';
  return { ...(layout.table && { table: layout.table }), ...(layout.pba && { pba: layout.pba }), relocated, reason: decision.note.message };
}
