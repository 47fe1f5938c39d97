/**
 * DeviceDescription ⇄ JSON (u64 as `"0x..."` strings), so a description captured on one machine can be
 * planned on another (`vfio-bars plan --description FILE`). Input is validated: a malformed file is a
 * VfioError naming the JSON path, never a crash later in the planner.
 */
import { formatU64 } from '../uapi/u64.js';
import { jsonFields } from '../json-fields.js';
import type { BarRegister, ByteRange, DeviceDescription, IrqDescription, MsixDescription, RegionCapability, RegionDescription } from './description.js';
import { VfioError } from './errors.js';

export function descriptionToJSON(d: DeviceDescription): unknown {
  return {
    bdf: d.bdf,
    flags: d.flags,
    numRegions: d.numRegions,
    numIrqs: d.numIrqs,
    regions: d.regions.map((r) => ({ index: r.index, flags: r.flags, size: formatU64(r.size), offset: formatU64(r.offset), capabilities: r.capabilities.map(capToJSON) })),
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
  return c.kind === 'sparse-mmap' ? { ...c, areas: c.areas.map((a) => ({ offset: formatU64(a.offset), size: formatU64(a.size) })) } : { ...c };
}


export function descriptionFromJSON(json: unknown): DeviceDescription {
  const o = obj(json, '$');
  const config = o.config === undefined ? undefined : obj(o.config, '$.config');
  return {
    bdf: str(o.bdf, '$.bdf'),
    flags: int(o.flags, '$.flags'),
    numRegions: int(o.numRegions, '$.numRegions'),
    numIrqs: int(o.numIrqs, '$.numIrqs'),
    regions: arr(o.regions, '$.regions').map((r, i) => regionFromJSON(r, `$.regions[${i}]`)),
    irqs: arr(o.irqs ?? [], '$.irqs').map((r, i): IrqDescription => {
      const q = obj(r, `$.irqs[${i}]`);
      return { index: int(q.index, `$.irqs[${i}].index`), flags: int(q.flags, `$.irqs[${i}].flags`), count: int(q.count, `$.irqs[${i}].count`) };
    }),
    ...(config && {
      config: {
        vendorId: int(config.vendorId, '$.config.vendorId'),
        deviceId: int(config.deviceId, '$.config.deviceId'),
        classCode: int(config.classCode, '$.config.classCode'),
        headerType: int(config.headerType, '$.config.headerType'),
        capabilities: arr(config.capabilities ?? [], '$.config.capabilities').map((c, i) => {
          const q = obj(c, `$.config.capabilities[${i}]`);
          return { id: int(q.id, `$.config.capabilities[${i}].id`), offset: int(q.offset, `$.config.capabilities[${i}].offset`) };
        }),
      },
    }),
    bars: arr(o.bars ?? [], '$.bars').map((b, i) => barFromJSON(b, `$.bars[${i}]`)),
    ...(o.msix !== undefined && { msix: msixFromJSON(o.msix, '$.msix') }),
  };
}

function regionFromJSON(json: unknown, at: string): RegionDescription {
  const o = obj(json, at);
  return {
    index: int(o.index, `${at}.index`),
    flags: int(o.flags, `${at}.flags`),
    size: u64(o.size, `${at}.size`),
    offset: u64(o.offset, `${at}.offset`),
    capabilities: arr(o.capabilities ?? [], `${at}.capabilities`).map((c, i) => capFromJSON(c, `${at}.capabilities[${i}]`)),
  };
}

function capFromJSON(json: unknown, at: string): RegionCapability {
  const o = obj(json, at);
  const version = int(o.version ?? 1, `${at}.version`);
  switch (o.kind) {
    case 'sparse-mmap':
      return { kind: 'sparse-mmap', id: 1, version, areas: arr(o.areas, `${at}.areas`).map((a, i): ByteRange => {
        const q = obj(a, `${at}.areas[${i}]`);
        return { offset: u64(q.offset, `${at}.areas[${i}].offset`), size: u64(q.size, `${at}.areas[${i}].size`) };
      }) };
    case 'type':
      return { kind: 'type', id: 2, version, type: int(o.type, `${at}.type`), subtype: int(o.subtype, `${at}.subtype`) };
    case 'msix-mappable':
      return { kind: 'msix-mappable', id: 3, version };
    case 'unknown':
      return { kind: 'unknown', id: int(o.id, `${at}.id`), version, data: str(o.data ?? '', `${at}.data`) };
    default:
      return fail(`${at}.kind must be sparse-mmap, type, msix-mappable or unknown`);
  }
}

function barFromJSON(json: unknown, at: string): BarRegister {
  const o = obj(json, at);
  const kind = o.kind;
  if (kind !== 'memory' && kind !== 'io' && kind !== 'upper-half' && kind !== 'unused') fail(`${at}.kind must be memory, io, upper-half or unused`);
  return { index: int(o.index, `${at}.index`), kind, is64Bit: o.is64Bit === true, prefetchable: o.prefetchable === true, address: u64(o.address ?? '0x0', `${at}.address`) };
}

function msixFromJSON(json: unknown, at: string): MsixDescription {
  const o = obj(json, at);
  const part = (v: unknown, where: string): { bir: number; offset: bigint; size: bigint } => {
    const q = obj(v, where);
    const bir = int(q.bir, `${where}.bir`);
    if (bir > 5) fail(`${where}.bir ${bir} is not a BAR index`);
    return { bir, offset: u64(q.offset, `${where}.offset`), size: u64(q.size, `${where}.size`) };
  };
  return { capOffset: int(o.capOffset ?? 0, `${at}.capOffset`), vectors: int(o.vectors, `${at}.vectors`), table: part(o.table, `${at}.table`), pba: part(o.pba, `${at}.pba`) };
}

function fail(message: string): never {
  throw new VfioError(`device description: ${message}`, { code: 'BAD_DESCRIPTION' });
}

const { object: obj, array: arr, string: str, int, u64 } = jsonFields(fail);
