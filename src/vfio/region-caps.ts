/* The region-info capability-chain parser (documented on parseRegionCapabilities). */
import {
  SIZEOF, VFIO_INFO_CAP_HEADER, VFIO_REGION_CAP, VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_SPARSE_MMAP_AREA,
} from '../uapi/vfio.js';
import { decodeStruct } from '../uapi/layout.js';
import { hex } from '../errors.js';
import type { ByteRange, RegionCapability } from './description.js';
import { VfioError } from './errors.js';
import { byBigint } from '../util/compare.js';

/** More capabilities than any kernel emits: a longer chain is corrupt. */
const MAX_CAPABILITIES = 64;
const HEADER = SIZEOF.vfio_info_cap_header;
const SPARSE_FIXED = SIZEOF.vfio_region_info_cap_sparse_mmap;
const AREA = SIZEOF.vfio_region_sparse_mmap_area;

export interface CapChainInput {
  /** The reply buffer, starting with struct vfio_region_info. */
  readonly buffer: Buffer;
  /** `argsz` the kernel reported: bytes beyond it (or beyond the buffer) are not part of the reply. */
  readonly argsz: number;
  readonly capOffset: number;
  readonly regionIndex: number;
  readonly regionSize: bigint;
}

/**
 * Parses the capability chain that VFIO_DEVICE_GET_REGION_INFO appends to `vfio_region_info`. The bytes come
 * from the kernel (or a variant driver) and are treated as untrusted: every offset is bounds-checked, the walk
 * is loop-proof and bounded (64 capabilities), counts are checked against the space they claim, and each defect
 * is a VfioError naming the region — never a hang, a RangeError or a crash. Exported for VMMs that query
 * regions themselves and for fuzzing.
 *
 * @param input the reply buffer, its `argsz`, the `cap_offset` field, and the region's index and size.
 * @returns the capabilities in chain order (unknown ids kept as `kind: 'unknown'` with their bytes).
 * @throws VfioError with `region` set and code `CAP_OFFSET_MISSING`, `CAP_CHAIN_TOO_LONG`, `CAP_CHAIN_LOOP`,
 *   `CAP_OUT_OF_BOUNDS`, `CAP_MISALIGNED`, `CAP_TRUNCATED`, `SPARSE_TOO_MANY_AREAS`, `SPARSE_AREA_OUTSIDE_REGION`
 *   or `SPARSE_AREAS_OVERLAP`.
 * @example
 * const caps = parseRegionCapabilities({ buffer: reply, argsz: reply.readUInt32LE(0), capOffset, regionIndex: 0, regionSize });
 * const sparse = caps.find((c) => c.kind === 'sparse-mmap');
 */
export function parseRegionCapabilities(input: CapChainInput): RegionCapability[] {
  const limit = Math.min(input.argsz, input.buffer.length);
  const fail = (code: string, what: string): never => {
    throw new VfioError(`region ${input.regionIndex} capability chain: ${what}`, { code, region: input.regionIndex });
  };
  if (input.capOffset === 0) fail('CAP_OFFSET_MISSING', 'CAPS flag set but cap_offset is 0');

  const caps: RegionCapability[] = [];
  const visited = new Set<number>();
  let offset = input.capOffset;
  while (offset !== 0) {
    checkHeaderPlacement(offset, limit, visited, fail);
    if (caps.length >= MAX_CAPABILITIES) fail('CAP_CHAIN_TOO_LONG', `more than ${MAX_CAPABILITIES} capabilities`);
    visited.add(offset);
    const { id, version, next } = decodeStruct(VFIO_INFO_CAP_HEADER, input.buffer, offset);
    caps.push(parseCapability(input, id, version, offset, next, limit, fail));
    offset = next;
  }
  return caps;
}

type Fail = (code: string, what: string) => never;

function checkHeaderPlacement(offset: number, limit: number, visited: Set<number>, fail: Fail): void {
  if (visited.has(offset)) fail('CAP_CHAIN_LOOP', `offset ${hex(offset)} visited twice`);
  if (offset < SIZEOF.vfio_region_info) fail('CAP_OUT_OF_BOUNDS', `header at ${hex(offset)} overlaps struct vfio_region_info`);
  // The kernel aligns capabilities to 8 bytes; 4 is the least that keeps the u32 `next` field aligned.
  if (offset % 4 !== 0) fail('CAP_MISALIGNED', `header at ${hex(offset)} is not 4-byte aligned`);
  if (offset + HEADER > limit) fail('CAP_OUT_OF_BOUNDS', `header at ${hex(offset)} runs past argsz ${hex(limit)}`);
}

function parseCapability(
  input: CapChainInput,
  id: number,
  version: number,
  offset: number,
  next: number,
  limit: number,
  fail: Fail,
): RegionCapability {
  switch (id) {
    case VFIO_REGION_CAP.SPARSE_MMAP:
      return { kind: 'sparse-mmap', id: 1, version, areas: parseSparseAreas(input, offset, limit, fail) };
    case VFIO_REGION_CAP.TYPE:
      return parseTypeCapability(input, version, offset, limit, fail);
    case VFIO_REGION_CAP.MSIX_MAPPABLE:
      return { kind: 'msix-mappable', id: 3, version };
    default: {
      // Unknown capabilities are kept verbatim; their body ends where the next one starts (or at argsz).
      const end = next > offset && next <= limit ? next : limit;
      return { kind: 'unknown', id, version, data: input.buffer.subarray(offset + HEADER, end).toString('hex') };
    }
  }
}

function parseTypeCapability(input: CapChainInput, version: number, offset: number, limit: number, fail: Fail): RegionCapability {
  if (offset + SIZEOF.vfio_region_info_cap_type > limit) fail('CAP_TRUNCATED', `TYPE capability at ${hex(offset)} runs past argsz`);
  const { type, subtype } = decodeStruct(VFIO_REGION_INFO_CAP_TYPE, input.buffer, offset);
  return { kind: 'type', id: 2, version, type, subtype };
}

function parseSparseAreas(input: CapChainInput, offset: number, limit: number, fail: Fail): ByteRange[] {
  if (offset + SPARSE_FIXED > limit) fail('CAP_TRUNCATED', `SPARSE_MMAP capability at ${hex(offset)} runs past argsz`);
  const count = decodeStruct(VFIO_REGION_INFO_CAP_SPARSE_MMAP, input.buffer, offset).nrAreas;
  const room = Math.floor((limit - offset - SPARSE_FIXED) / AREA);
  if (count > room) fail('SPARSE_TOO_MANY_AREAS', `nr_areas ${count} but only ${room} fit before argsz`);
  const areas: ByteRange[] = [];
  for (let i = 0; i < count; i++) {
    const at = offset + SPARSE_FIXED + i * AREA;
    const area: ByteRange = decodeStruct(VFIO_REGION_SPARSE_MMAP_AREA, input.buffer, at);
    if (area.size === 0n) continue; // maps nothing; the kernel's own parsers skip these too
    if (area.offset > input.regionSize || area.size > input.regionSize - area.offset) {
      fail('SPARSE_AREA_OUTSIDE_REGION', `area ${i} ${hex(area.offset)}+${hex(area.size)} is outside the ${hex(input.regionSize)} region`);
    }
    areas.push(area);
  }
  areas.sort(byBigint((a) => a.offset));
  for (let i = 1; i < areas.length; i++) {
    const previous = areas[i - 1]!;
    const current = areas[i]!;
    if (current.offset < previous.offset + previous.size) {
      fail(
        'SPARSE_AREAS_OVERLAP',
        `areas ${hex(previous.offset)}+${hex(previous.size)} and ${hex(current.offset)}+${hex(current.size)} overlap`,
      );
    }
  }
  return areas;
}
