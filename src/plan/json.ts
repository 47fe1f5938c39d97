/** MappingPlan ⇄ JSON, with every u64 as a `"0x..."` string (JSON numbers lose precision past 2^53). */
import { formatU64 } from '../uapi/u64.js';
import { jsonFields } from '../json-fields.js';
import type { DirectMapping, MappingPlan, PlannedBar, PlannedMsix, TrappedRange } from './types.js';
import { PlanError } from './errors.js';
import { PLAN_LIMITS, validatePlan } from './validate-plan.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function planToJSON(plan: MappingPlan): Json {
  return {
    pageSize: formatU64(plan.pageSize),
    msixStrategy: plan.msixStrategy,
    bars: plan.bars.map(barToJSON),
    warnings: [...plan.warnings],
    skipped: plan.skipped.map((s) => ({ index: s.index, reason: s.reason })),
  };
}

function barToJSON(bar: PlannedBar): Json {
  return {
    index: bar.index,
    regionOffset: formatU64(bar.regionOffset),
    regionSize: formatU64(bar.regionSize),
    guestSize: formatU64(bar.guestSize),
    ...(bar.guestAddress !== undefined && { guestAddress: formatU64(bar.guestAddress) }),
    sizeMask: formatU64(bar.sizeMask),
    is64Bit: bar.is64Bit,
    prefetchable: bar.prefetchable,
    ...(bar.msix && { msix: msixToJSON(bar.msix) }),
    mappings: bar.mappings.map(mappingToJSON),
    trapped: bar.trapped.map((t) => ({ barOffset: formatU64(t.barOffset), size: formatU64(t.size), reason: t.reason })),
    ...(bar.suspended && { suspended: bar.suspended.map(mappingToJSON) }),
    reasons: [...bar.reasons],
  };
}

function msixToJSON(m: PlannedMsix): Json {
  const range = (r: { offset: bigint; size: bigint }): Json => ({ offset: formatU64(r.offset), size: formatU64(r.size) });
  return { ...(m.table && { table: range(m.table) }), ...(m.pba && { pba: range(m.pba) }), relocated: m.relocated, reason: m.reason };
}

function mappingToJSON(m: DirectMapping): Json {
  return {
    fileOffset: formatU64(m.fileOffset),
    barOffset: formatU64(m.barOffset),
    size: formatU64(m.size),
    ...(m.gpa !== undefined && { gpa: formatU64(m.gpa) }),
    prot: m.prot,
    reason: m.reason,
  };
}

// ---- parsing -----------------------------------------------------------------------------------


/**
 * Reads a plan written by `planToJSON` and checks it with `validatePlan` (a plan from a file is untrusted).
 * @throws PlanError `BAD_PLAN_JSON` for a malformed document, or validatePlan's code for an unsound plan.
 * @example
 * const plan = planFromJSON(JSON.parse(readFileSync('plan.json', 'utf8')));
 */
export function planFromJSON(json: unknown): MappingPlan {
  const plan = readPlan(json);
  validatePlan(plan);
  return plan;
}

function readPlan(json: unknown): MappingPlan {
  const o = object(json, 'plan', ['pageSize', 'msixStrategy', 'bars', 'warnings', 'skipped']);
  const strategy = o.msixStrategy ?? 'relocate';
  if (strategy !== 'relocate' && strategy !== 'hole') throw new PlanError('BAD_PLAN_JSON', 'plan.msixStrategy must be relocate or hole');
  return {
    pageSize: u64(o.pageSize, 'plan.pageSize'),
    msixStrategy: strategy,
    bars: array(o.bars, 'plan.bars', PLAN_LIMITS.bars).map((b, i) => barFromJSON(b, `plan.bars[${i}]`)),
    warnings: array(o.warnings ?? [], 'plan.warnings', PLAN_LIMITS.reasons).map((w, i) => string(w, `plan.warnings[${i}]`)),
    skipped: array(o.skipped ?? [], 'plan.skipped', PLAN_LIMITS.bars).map((s, i) => {
      const so = object(s, `plan.skipped[${i}]`, ['index', 'reason']);
      return { index: int(so.index, `plan.skipped[${i}].index`, 5), reason: string(so.reason, `plan.skipped[${i}].reason`) };
    }),
  };
}

const BAR_KEYS = ['index', 'regionOffset', 'regionSize', 'guestSize', 'guestAddress', 'sizeMask', 'is64Bit', 'prefetchable', 'msix', 'mappings', 'trapped', 'suspended', 'reasons'];

function barFromJSON(json: unknown, at: string): PlannedBar {
  const o = object(json, at, BAR_KEYS);
  const ranges = (key: string): unknown[] => array(o[key], `${at}.${key}`, PLAN_LIMITS.ranges);
  return {
    index: int(o.index, `${at}.index`, 5),
    regionOffset: u64(o.regionOffset ?? '0x0', `${at}.regionOffset`),
    regionSize: u64(o.regionSize, `${at}.regionSize`),
    guestSize: u64(o.guestSize, `${at}.guestSize`),
    ...(o.guestAddress !== undefined && { guestAddress: u64(o.guestAddress, `${at}.guestAddress`) }),
    sizeMask: u64(o.sizeMask, `${at}.sizeMask`),
    is64Bit: bool(o.is64Bit, `${at}.is64Bit`),
    prefetchable: bool(o.prefetchable, `${at}.prefetchable`),
    ...(o.msix !== undefined && { msix: msixFromJSON(o.msix, `${at}.msix`) }),
    mappings: ranges('mappings').map((m, i) => mappingFromJSON(m, `${at}.mappings[${i}]`)),
    trapped: ranges('trapped').map((t, i) => trappedFromJSON(t, `${at}.trapped[${i}]`)),
    ...(o.suspended !== undefined && { suspended: ranges('suspended').map((m, i) => mappingFromJSON(m, `${at}.suspended[${i}]`)) }),
    reasons: array(o.reasons ?? [], `${at}.reasons`, PLAN_LIMITS.reasons).map((r, i) => string(r, `${at}.reasons[${i}]`)),
  };
}

function msixFromJSON(json: unknown, at: string): PlannedMsix {
  const o = object(json, at, ['table', 'pba', 'relocated', 'reason']);
  const range = (v: unknown, where: string): { offset: bigint; size: bigint } => {
    const r = object(v, where, ['offset', 'size']);
    return { offset: u64(r.offset, `${where}.offset`), size: u64(r.size, `${where}.size`) };
  };
  return {
    ...(o.table !== undefined && { table: range(o.table, `${at}.table`) }),
    ...(o.pba !== undefined && { pba: range(o.pba, `${at}.pba`) }),
    relocated: bool(o.relocated, `${at}.relocated`),
    reason: string(o.reason ?? '', `${at}.reason`),
  };
}

function mappingFromJSON(json: unknown, at: string): DirectMapping {
  const o = object(json, at, ['fileOffset', 'barOffset', 'size', 'gpa', 'prot', 'reason']);
  const prot = o.prot;
  if (prot !== 'read' && prot !== 'read-write') throw new PlanError('BAD_PLAN_JSON', `${at}.prot must be read or read-write`);
  return {
    fileOffset: u64(o.fileOffset, `${at}.fileOffset`),
    barOffset: u64(o.barOffset, `${at}.barOffset`),
    size: u64(o.size, `${at}.size`),
    ...(o.gpa !== undefined && { gpa: u64(o.gpa, `${at}.gpa`) }),
    prot,
    reason: string(o.reason, `${at}.reason`),
  };
}

function trappedFromJSON(json: unknown, at: string): TrappedRange {
  const o = object(json, at, ['barOffset', 'size', 'reason']);
  return { barOffset: u64(o.barOffset, `${at}.barOffset`), size: u64(o.size, `${at}.size`), reason: string(o.reason, `${at}.reason`) };
}

const { object, array, string, int, u64, bool } = jsonFields((message) => {
  throw new PlanError('BAD_PLAN_JSON', message);
});
