/* DeviceDescription <-> JSON (documented on descriptionToJSON and descriptionFromJSON). */
import { formatU64 } from '../uapi/u64.js';
import { jsonFields } from '../json-fields.js';
import type {
  BarRegister,
  ByteRange,
  DeviceDescription,
  IrqDescription,
  MsixDescription,
  PciConfigSummary,
  RegionCapability,
  RegionDescription,
} from './description.js';
import { DESCRIPTION_LIMITS, MAX_MSIX_VECTORS } from './description-limits.js';
import { VfioError } from './errors.js';

/**
 * A DeviceDescription as JSON-ready data (u64 as `"0x..."` strings), so a description captured on one
 * machine can be planned on another (`vfio-bars plan --description FILE`). Read it back with
 * {@link descriptionFromJSON}. Does not validate: it writes what it is given.
 *
 * @example
 * writeFileSync('nvme.json', JSON.stringify(descriptionToJSON(device.describe()), null, 2));
 */
export function descriptionToJSON(d: DeviceDescription): unknown {
  return {
    bdf: d.bdf,
    flags: d.flags,
    numRegions: d.numRegions,
    numIrqs: d.numIrqs,
    regions: d.regions.map(
      (r) => ({
        index: r.index,
        flags: r.flags,
        size: formatU64(r.size),
        offset: formatU64(r.offset),
        capabilities: r.capabilities.map(capToJSON),
      })
    ),
    irqs: d.irqs.map((i) => ({ ...i })),
    ...(d.config && { config: { ...d.config, capabilities: d.config.capabilities.map((c) => ({ ...c })) } }),
    bars: d.bars.map((b) => ({ ...b, address: formatU64(b.address) })),
    ...(d.msix && {
      msix: {
        capOffset: d.msix.capOffset,
        vectors: d.msix.vectors,
        table: { bir: d.msix.table.bir, offset: formatU64(d.msix.table.offset), size: formatU64(d.msix.table.size) },
        pba: { bir: d.msix.pba.bir, offset: formatU64(d.msix.pba.offset), size: formatU64(d.msix.pba.size) },
      },
    }),
  };
}

function capToJSON(c: RegionCapability): unknown {
  if (c.kind !== 'sparse-mmap') return { ...c };
  return { ...c, areas: c.areas.map((a) => ({ offset: formatU64(a.offset), size: formatU64(a.size) })) };
}


/**
 * Reads a description written by `descriptionToJSON`. Strict: no coercion (`is64Bit: "true"` is an error),
 * unknown keys refused, numbers in their field's range, indices unique (regions, irqs, BARs), lists and
 * strings bounded (DESCRIPTION_LIMITS). Device geometry (BAR sizes, MSI-X placement) is the planner's
 * `validateDescription`'s business; this checks that the file is a description at all.
 * @throws VfioError `BAD_DESCRIPTION` naming the JSON path of the first defect.
 * @example
 * const description = descriptionFromJSON(JSON.parse(readFileSync('nvme.json', 'utf8')));
 */
export function descriptionFromJSON(json: unknown): DeviceDescription {
  const o = obj(json, '$', ['bdf', 'flags', 'numRegions', 'numIrqs', 'regions', 'irqs', 'config', 'bars', 'msix']);
  const regions = arr(o.regions, '$.regions', DESCRIPTION_LIMITS.regions).map((r, i) => regionFromJSON(r, `$.regions[${i}]`));
  const irqs = arr(o.irqs ?? [], '$.irqs', DESCRIPTION_LIMITS.irqs).map((r, i) => irqFromJSON(r, `$.irqs[${i}]`));
  const bars = arr(o.bars ?? [], '$.bars', DESCRIPTION_LIMITS.bars).map((b, i) => barFromJSON(b, `$.bars[${i}]`));
  unique(regions, '$.regions', 'region');
  unique(irqs, '$.irqs', 'irq');
  unique(bars, '$.bars', 'BAR');
  return {
    bdf: str(o.bdf, '$.bdf', DESCRIPTION_LIMITS.bdfLength),
    flags: int(o.flags, '$.flags'),
    numRegions: int(o.numRegions, '$.numRegions'),
    numIrqs: int(o.numIrqs, '$.numIrqs'),
    regions,
    irqs,
    ...(o.config !== undefined && { config: configFromJSON(o.config, '$.config') }),
    bars,
    ...(o.msix !== undefined && { msix: msixFromJSON(o.msix, '$.msix') }),
  };
}

function unique(items: readonly { index: number }[], at: string, what: string): void {
  const seen = new Set<number>();
  for (const item of items) {
    if (seen.has(item.index)) fail(`${at}: ${what} index ${item.index} appears twice`);
    seen.add(item.index);
  }
}

function irqFromJSON(json: unknown, at: string): IrqDescription {
  const q = obj(json, at, ['index', 'flags', 'count']);
  return { index: int(q.index, `${at}.index`), flags: int(q.flags, `${at}.flags`), count: int(q.count, `${at}.count`) };
}

function configFromJSON(json: unknown, at: string): PciConfigSummary {
  const config = obj(json, at, ['vendorId', 'deviceId', 'classCode', 'headerType', 'capabilities']);
  return {
    vendorId: int(config.vendorId, `${at}.vendorId`, 0xffff),
    deviceId: int(config.deviceId, `${at}.deviceId`, 0xffff),
    classCode: int(config.classCode, `${at}.classCode`, 0xff_ffff),
    headerType: int(config.headerType, `${at}.headerType`, 0xff),
    capabilities: arr(config.capabilities ?? [], `${at}.capabilities`, DESCRIPTION_LIMITS.configCapabilities).map((c, i) => {
      const q = obj(c, `${at}.capabilities[${i}]`, ['id', 'offset']);
      return { id: int(q.id, `${at}.capabilities[${i}].id`, 0xff), offset: int(q.offset, `${at}.capabilities[${i}].offset`, 0xfff) };
    }),
  };
}

function regionFromJSON(json: unknown, at: string): RegionDescription {
  const o = obj(json, at, ['index', 'flags', 'size', 'offset', 'capabilities']);
  return {
    index: int(o.index, `${at}.index`),
    flags: int(o.flags, `${at}.flags`),
    size: u64(o.size, `${at}.size`),
    offset: u64(o.offset, `${at}.offset`),
    capabilities: arr(o.capabilities ?? [], `${at}.capabilities`, DESCRIPTION_LIMITS.capabilities)
      .map((c, i) => capFromJSON(c, `${at}.capabilities[${i}]`)),
  };
}

const CAP_IDS = { 'sparse-mmap': 1, type: 2, 'msix-mappable': 3 } as const;

function capFromJSON(json: unknown, at: string): RegionCapability {
  const o = obj(json, at, ['kind', 'id', 'version', 'areas', 'type', 'subtype', 'data']);
  const version = int(o.version ?? 1, `${at}.version`, 0xffff);
  const kind = o.kind;
  if (kind !== 'sparse-mmap' && kind !== 'type' && kind !== 'msix-mappable' && kind !== 'unknown') {
    return fail(`${at}.kind must be sparse-mmap, type, msix-mappable or unknown`);
  }
  const id = kind === 'unknown' ? int(o.id, `${at}.id`, 0xffff) : int(o.id ?? CAP_IDS[kind], `${at}.id`, 0xffff);
  if (kind !== 'unknown' && id !== CAP_IDS[kind]) fail(`${at}.id ${id} does not match kind ${kind}`);
  const extra = (allowed: readonly string[]): void => {
    for (const key of ['areas', 'type', 'subtype', 'data']) {
      if (o[key] !== undefined && !allowed.includes(key)) fail(`${at}.${key} does not belong to a ${kind} capability`);
    }
  };
  switch (kind) {
    case 'sparse-mmap': {
      extra(['areas']);
      const areas = arr(o.areas, `${at}.areas`, DESCRIPTION_LIMITS.sparseAreas).map((a, i) => areaFromJSON(a, `${at}.areas[${i}]`));
      return { kind: 'sparse-mmap', id: 1, version, areas };
    }
    case 'type':
      extra(['type', 'subtype']);
      return { kind: 'type', id: 2, version, type: int(o.type, `${at}.type`), subtype: int(o.subtype, `${at}.subtype`) };
    case 'msix-mappable':
      extra([]);
      return { kind: 'msix-mappable', id: 3, version };
    case 'unknown': {
      extra(['data']);
      const data = str(o.data ?? '', `${at}.data`, DESCRIPTION_LIMITS.capabilityData);
      if (!/^([0-9a-f]{2})*$/.test(data)) fail(`${at}.data must be lower-case hex bytes`);
      return { kind: 'unknown', id, version, data };
    }
  }
}

function areaFromJSON(json: unknown, at: string): ByteRange {
  const q = obj(json, at, ['offset', 'size']);
  return { offset: u64(q.offset, `${at}.offset`), size: u64(q.size, `${at}.size`) };
}

function barFromJSON(json: unknown, at: string): BarRegister {
  const o = obj(json, at, ['index', 'kind', 'is64Bit', 'prefetchable', 'address']);
  const kind = o.kind;
  if (kind !== 'memory' && kind !== 'io' && kind !== 'upper-half' && kind !== 'unused') {
    return fail(`${at}.kind must be memory, io, upper-half or unused`);
  }
  return {
    index: int(o.index, `${at}.index`, 5),
    kind,
    is64Bit: bool(o.is64Bit, `${at}.is64Bit`, false),
    prefetchable: bool(o.prefetchable, `${at}.prefetchable`, false),
    address: u64(o.address ?? '0x0', `${at}.address`),
  };
}

function msixFromJSON(json: unknown, at: string): MsixDescription {
  const o = obj(json, at, ['capOffset', 'vectors', 'table', 'pba']);
  const part = (v: unknown, where: string): { bir: number; offset: bigint; size: bigint } => {
    const q = obj(v, where, ['bir', 'offset', 'size']);
    const bir = int(q.bir, `${where}.bir`, 7);
    if (bir > 5) fail(`${where}.bir ${bir} is not a BAR index (6 and 7 are reserved)`);
    return { bir, offset: u64(q.offset, `${where}.offset`), size: u64(q.size, `${where}.size`) };
  };
  const vectors = int(o.vectors, `${at}.vectors`, MAX_MSIX_VECTORS);
  if (vectors < 1) fail(`${at}.vectors must be 1-${MAX_MSIX_VECTORS}`);
  const capOffset = int(o.capOffset ?? 0, `${at}.capOffset`, 0xfff);
  return { capOffset, vectors, table: part(o.table, `${at}.table`), pba: part(o.pba, `${at}.pba`) };
}

function fail(message: string): never {
  throw new VfioError(`device description: ${message}`, { code: 'BAD_DESCRIPTION' });
}

const { object: obj, array: arr, string: str, int, u64, bool } = jsonFields(fail);
