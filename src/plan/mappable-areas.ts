/**
 * Which bytes of a region VFIO lets us mmap: nothing without the MMAP flag, the SPARSE_MMAP areas when
 * the capability is present, otherwise the whole region.
 */
import { VFIO_REGION_CAP, VFIO_REGION_FLAGS } from '../uapi/vfio.js';
import type { RegionDescription } from '../vfio/description.js';
import { hex } from '../errors.js';
import type { BarNoteCode } from './types.js';
import { clampSpan, mergeSpans, span, type Span } from './ranges.js';

export interface MappableAreas {
  /** Sorted, merged spans of the region that may be mmapped. */
  readonly spans: readonly Span[];
  readonly reason: string;
  /** Which of the three cases applies (the code of the BAR note that `reason` becomes). */
  readonly code: Extract<BarNoteCode, 'no-mmap' | 'sparse-mmap' | 'whole-region-mmappable'>;
  /** True when the kernel said the MSI-X table may be mmapped (MSIX_MAPPABLE). */
  readonly msixMappable: boolean;
  readonly sparse: boolean;
}

export function mappableAreas(region: RegionDescription): MappableAreas {
  const msixMappable = region.capabilities.some((cap) => cap.id === VFIO_REGION_CAP.MSIX_MAPPABLE);
  if ((region.flags & VFIO_REGION_FLAGS.MMAP) === 0) {
    return { spans: [], msixMappable, sparse: false, code: 'no-mmap', reason: 'region has no MMAP flag: VFIO forbids mmap (e.g. a sub-page BAR that is not page-aligned on the host), every access is trapped' };
  }
  const sparseCap = region.capabilities.find((cap) => cap.kind === 'sparse-mmap');
  if (sparseCap?.kind === 'sparse-mmap') {
    const whole = span(0n, region.size);
    const spans = mergeSpans(sparseCap.areas.flatMap((a) => clampSpan(span(a.offset, a.offset + a.size), whole) ?? []));
    const list = sparseCap.areas.map((a) => `${hex(a.offset)}+${hex(a.size)}`).join(', ') || 'none';
    return { spans, msixMappable, sparse: true, code: 'sparse-mmap', reason: `SPARSE_MMAP areas: ${list}` };
  }
  return { spans: region.size > 0n ? [span(0n, region.size)] : [], msixMappable, sparse: false, code: 'whole-region-mmappable', reason: 'whole region is mmappable' };
}
