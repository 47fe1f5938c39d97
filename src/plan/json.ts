/** MappingPlan ⇄ JSON, with every u64 as a `"0x..."` string (JSON numbers lose precision past 2^53). */
import { formatU64 } from '../uapi/u64.js';
import { jsonFields } from '../json-fields.js';
import type {
  BarNote, BarNoteCode, DirectMapping, MappingPlan, PlannedBar, PlannedMsix, PlanWarning, PlanWarningCode, SkipCode, SkippedBar,
  TrapCause, TrapKind, TrappedRange,
} from './types.js';
import { PlanError } from './errors.js';
import { PLAN_LIMITS, validatePlan } from './validate-plan.js';
import { deepFreeze } from '../util/deep-freeze.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A plan as JSON: every u64 as a `"0x..."` string; trapped ranges with `kind`, `fileOffset` (absent for
 * padding) and `cause`; warnings `{ bar, code, message }`; skipped BARs `{ index, code, reason }`; BAR
 * notes `{ code, message }`. `planFromJSON` reads it back to an equal plan.
 *
 * @example
 * ```ts
 * writeFileSync('plan.json', JSON.stringify(planToJSON(plan), null, 2));
 * ```
 */
export function planToJSON(plan: MappingPlan): Json {
  return {
    pageSize: formatU64(plan.pageSize),
    msixStrategy: plan.msixStrategy,
    bars: plan.bars.map(barToJSON),
    warnings: plan.warnings.map((w) => ({ bar: w.bar, code: w.code, message: w.message })),
    skipped: plan.skipped.map((s) => ({ index: s.index, code: s.code, reason: s.reason })),
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
    trapped: bar.trapped.map(trappedToJSON),
    ...(bar.suspended && { suspended: bar.suspended.map(mappingToJSON) }),
    reasons: bar.reasons.map((r) => ({ code: r.code, message: r.message })),
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

function trappedToJSON(t: TrappedRange): Json {
  return {
    barOffset: formatU64(t.barOffset),
    size: formatU64(t.size),
    kind: t.kind,
    ...(t.fileOffset !== undefined && { fileOffset: formatU64(t.fileOffset) }),
    cause: t.cause,
    reason: t.reason,
  };
}

// ---- parsing -----------------------------------------------------------------------------------


/**
 * Reads a plan written by `planToJSON`, strictly (no coercion, unknown keys refused, lists and strings
 * bounded), and checks it with `validatePlan`: a plan from a file is untrusted. The plan is deeply frozen,
 * as `planBarMappings` returns it.
 *
 * @throws PlanError `BAD_PLAN_JSON` naming the JSON path of the first field that is missing, of the wrong
 *   type, or not one of the known kinds/causes/codes (a trapped range needs `fileOffset` unless it is padding);
 *   or validatePlan's code for a plan that is well-formed but unsound (e.g. `DUPLICATE_INDEX`, `BAD_PAGE_SIZE`).
 * @example
 * ```ts
 * const plan = planFromJSON(JSON.parse(readFileSync('plan.json', 'utf8')));
 * ```
 */
export function planFromJSON(json: unknown): MappingPlan {
  const plan = readPlan(json);
  validatePlan(plan);
  return deepFreeze(plan);
}

function readPlan(json: unknown): MappingPlan {
  const o = object(json, 'plan', ['pageSize', 'msixStrategy', 'bars', 'warnings', 'skipped']);
  const strategy = o.msixStrategy ?? 'relocate';
  if (strategy !== 'relocate' && strategy !== 'hole') throw new PlanError('BAD_PLAN_JSON', 'plan.msixStrategy must be relocate or hole');
  return {
    pageSize: u64(o.pageSize, 'plan.pageSize'),
    msixStrategy: strategy,
    bars: array(o.bars, 'plan.bars', PLAN_LIMITS.bars).map((b, i) => barFromJSON(b, `plan.bars[${i}]`)),
    warnings: array(o.warnings ?? [], 'plan.warnings', PLAN_LIMITS.reasons).map((w, i) => warningFromJSON(w, `plan.warnings[${i}]`)),
    skipped: array(o.skipped ?? [], 'plan.skipped', PLAN_LIMITS.bars).map((s, i) => skippedFromJSON(s, `plan.skipped[${i}]`)),
  };
}

const BAR_KEYS = [
  'index', 'regionOffset', 'regionSize', 'guestSize', 'guestAddress', 'sizeMask', 'is64Bit', 'prefetchable', 'msix', 'mappings', 'trapped',
  'suspended', 'reasons',
];

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
    reasons: array(o.reasons ?? [], `${at}.reasons`, PLAN_LIMITS.reasons).map((r, i) => noteFromJSON(r, `${at}.reasons[${i}]`)),
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
  const o = object(json, at, ['barOffset', 'size', 'kind', 'fileOffset', 'cause', 'reason']);
  const kind = oneOf(o.kind, TRAP_KINDS, `${at}.kind`);
  const hasFileOffset = o.fileOffset !== undefined;
  if (hasFileOffset === (kind === 'padding')) {
    const expected = kind === 'padding' ? 'absent for padding' : `present for kind ${kind}`;
    throw new PlanError('BAD_PLAN_JSON', `${at}.fileOffset must be ${expected}`);
  }
  return {
    barOffset: u64(o.barOffset, `${at}.barOffset`),
    size: u64(o.size, `${at}.size`),
    kind,
    ...(hasFileOffset && { fileOffset: u64(o.fileOffset, `${at}.fileOffset`) }),
    cause: oneOf(o.cause, TRAP_CAUSES, `${at}.cause`),
    reason: string(o.reason, `${at}.reason`),
  };
}

function warningFromJSON(json: unknown, at: string): PlanWarning {
  const o = object(json, at, ['bar', 'code', 'message']);
  return { bar: int(o.bar, `${at}.bar`, 5), code: oneOf(o.code, WARNING_CODES, `${at}.code`), message: string(o.message, `${at}.message`) };
}

function skippedFromJSON(json: unknown, at: string): SkippedBar {
  const o = object(json, at, ['index', 'code', 'reason']);
  return { index: int(o.index, `${at}.index`, 5), code: oneOf(o.code, SKIP_CODES, `${at}.code`), reason: string(o.reason, `${at}.reason`) };
}

function noteFromJSON(json: unknown, at: string): BarNote {
  const o = object(json, at, ['code', 'message']);
  return { code: oneOf(o.code, NOTE_CODES, `${at}.code`), message: string(o.message, `${at}.message`) };
}

// Every member of each union, checked by the compiler in both directions (a missing or unknown name fails).
const TRAP_KINDS = members<TrapKind>()({ 'device': 1, 'msix-table': 1, 'msix-pba': 1, 'padding': 1 });
const TRAP_CAUSES = members<TrapCause>()({
  'no-mmap': 1, 'outside-sparse-areas': 1, 'msix-not-mmappable': 1, 'msix-page': 1, 'msix-relocated': 1,
  'sub-page-unmappable': 1, 'unaligned-edge': 1, 'beyond-region': 1, 'suspended': 1,
});
const WARNING_CODES = members<PlanWarningCode>()({
  'no-mmap': 1, 'msix-relocation-refused': 1, 'sub-page-unmappable': 1, 'no-direct-mapping': 1,
  'unaligned-guest-address': 1, 'suspended': 1,
});
const SKIP_CODES = members<SkipCode>()({ 'upper-half': 1, 'io-bar': 1, 'no-region': 1, 'empty-region': 1 });
const NOTE_CODES = members<BarNoteCode>()({
  'no-mmap': 1, 'sparse-mmap': 1, 'whole-region-mmappable': 1, 'msix-not-mmappable': 1, 'msix-in-place': 1, 'msix-hole': 1,
  'msix-relocated': 1, 'msix-relocation-refused': 1, 'guest-size': 1, 'unaligned-guest-address': 1, 'suspended': 1,
});

function members<T extends string>() {
  return (all: Record<T, 1>): ReadonlySet<T> => new Set(Object.keys(all) as T[]);
}

function oneOf<T extends string>(value: unknown, allowed: ReadonlySet<T>, at: string): T {
  if (typeof value !== 'string' || !allowed.has(value as T)) {
    throw new PlanError('BAD_PLAN_JSON', `${at} must be one of ${[...allowed].join(', ')}`);
  }
  return value as T;
}

const { object, array, string, int, u64, bool } = jsonFields((message) => {
  throw new PlanError('BAD_PLAN_JSON', message);
});
