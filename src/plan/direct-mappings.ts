/**
 * Turning mappable spans into page-granular direct mappings. Each span is examined by `effectiveMapping`,
 * which returns what to mmap (possibly expanded to a whole page, or trimmed to the page-aligned interior)
 * or why nothing can be mapped; pieces left out become trapped ranges (`'unaligned-edge'`, `'sub-page-unmappable'`).
 */
import { hex } from '../errors.js';
import { alignDown, alignUp, isAligned } from './page-math.js';
import { span, spanLength, type Span } from './ranges.js';

/** A piece of a mappable area left out of its mapping: the non-page-aligned head or tail. */
export interface LeftOut {
  readonly span: Span;
  readonly reason: string;
}

export type AreaVerdict =
  | { readonly kind: 'map'; readonly mapped: Span; readonly reason: string; readonly leftOut: readonly LeftOut[] }
  | { readonly kind: 'skip'; readonly reason: string };

/**
 * How to map one mappable span [start, end) of a region of `regionSize` bytes.
 * - Expansion: a span that ends at the region's end may be mapped up to the next page boundary — the
 *   kernel allows mmap up to PAGE_ALIGN(region size) and reserves the rest of that page. A sub-page BAR
 *   becomes one whole page this way, but only when it starts page-aligned.
 * - Otherwise the span is trimmed to its page-aligned interior; what is left out is trapped.
 */
export function effectiveMapping(area: Span, regionSize: bigint, pageSize: bigint): AreaVerdict {
  const size = spanLength(area);
  const start = alignUp(area.start, pageSize);
  const reachesRegionEnd = area.end === regionSize;
  const end = reachesRegionEnd ? alignUp(area.end, pageSize) : alignDown(area.end, pageSize);

  if (end <= start) return skipReason(area, pageSize, reachesRegionEnd);

  const leftOut: LeftOut[] = [];
  if (start > area.start) leftOut.push({ span: span(area.start, start), reason: `head ${hex(area.start)}-${hex(start)} of a mappable area not page-aligned` });
  if (end < area.end) leftOut.push({ span: span(end, area.end), reason: `tail ${hex(end)}-${hex(area.end)} of a mappable area shorter than a page` });
  return { kind: 'map', mapped: span(start, end), reason: mappingReason(area, span(start, end), size, pageSize, regionSize), leftOut };
}

function skipReason(area: Span, pageSize: bigint, reachesRegionEnd: boolean): AreaVerdict {
  const what = `${hex(area.start)}+${hex(spanLength(area))}`;
  if (!isAligned(area.start, pageSize)) {
    return { kind: 'skip', reason: `mappable area ${what} is smaller than a page and its offset ${hex(area.start)} is not page-aligned (page ${hex(pageSize)})` };
  }
  const why = reachesRegionEnd ? 'cannot be grown to one' : 'does not reach the region end, so the rest of its page is not reserved';
  return { kind: 'skip', reason: `mappable area ${what} is smaller than a page and ${why}` };
}

function mappingReason(area: Span, mapped: Span, size: bigint, pageSize: bigint, regionSize: bigint): string {
  const mappedSize = spanLength(mapped);
  if (mappedSize > size && size < pageSize && area.start === 0n && area.end === regionSize) {
    return `expanded ${hex(size)} -> ${hex(mappedSize)}: sub-page BAR, page-aligned (kernel reserves the rest of the page)`;
  }
  if (mapped.end > area.end) {
    return `expanded ${hex(area.start)}+${hex(size)} -> ${hex(mapped.start)}+${hex(mappedSize)}: region end not page-aligned, kernel reserves the rest of the page`;
  }
  if (mapped.start === area.start && mapped.end === area.end) return `direct: ${hex(area.start)}+${hex(size)}`;
  return `direct: page-aligned interior ${hex(mapped.start)}+${hex(mappedSize)} of ${hex(area.start)}+${hex(size)}`;
}
