/**
 * `validatePlan` and `planViolations`: what makes a MappingPlan executable. A plan may be one the planner
 * just made, one read back from JSON, or one a caller built or edited, so every field is type- and
 * range-checked first (the first defect throws: nothing else can be trusted after it), then the plan's
 * soundness is checked as a list of typed violations:
 * - representable: guest sizes are powers of two <= 2^63 with the matching non-zero size mask; placements
 *   do not wrap past 2^64; 32-bit BARs are smaller than 4 GiB and sit below 4 GiB; placed BARs do not overlap;
 * - mappable: mappings are page-granular, inside PAGE_ALIGN(region size) and the guest BAR, disjoint, and
 *   their GPAs are the BAR base plus their offset (page-aligned), or absent on an unplaced BAR;
 * - trapped right: MSI-X table and PBA lie inside the guest BAR and in no mapping; mappings and trapped
 *   ranges tile the guest BAR exactly; suspended mappings only on a BAR without direct mappings.
 */
import { hex } from '../errors.js';
import type { DirectMapping, MappingPlan, PlannedBar } from './types.js';
import { PlanError } from './errors.js';
import { MAX_BAR_SIZE, alignUp, isAligned, isPowerOfTwo, validatePageSize } from './page-math.js';
import { overlaps, span, type Span } from './ranges.js';
import { MAX_32BIT_BAR_SIZE } from './validate-description.js';
import { U64_LIMIT, boolean, failWith, integer, list, oneOf, record, text, u64 } from './field-checks.js';
import { compareBigint } from '../util/compare.js';

/** Bounds on list lengths: a BAR with 4,096 sparse areas has fewer mappings and trapped ranges than this. */
export const PLAN_LIMITS = {
  /** Planned BARs per plan. */
  bars: 6,
  /** Direct mappings plus trapped ranges per BAR. */
  ranges: 32_768,
  /** Notes and warnings per plan. */
  reasons: 32_768,
  /** Characters of one reason or message. */
  reasonLength: 1 << 20,
} as const;

const U32_LIMIT = 1n << 32n;
const U32_MASK = U32_LIMIT - 1n;
const U64_MASK = U64_LIMIT - 1n;
const BAD = failWith('BAD_PLAN');
const TRAP_KINDS = ['device', 'msix-table', 'msix-pba', 'padding'] as const;

/**
 * Throws unless `plan` is a sound, executable MappingPlan (see the module comment). The mapper calls it
 * before touching the kernel; `planBarMappings`, `replan` and `planFromJSON` call it on what they return.
 * @throws PlanError: `BAD_PLAN` (wrong type or out-of-range field), `BAD_PAGE_SIZE`, `BAD_MSIX_STRATEGY`,
 *   `NO_SUCH_BAR`, `DUPLICATE_INDEX`, or the code of the first violation `planViolations` reports.
 * @example
 * const plan = planFromJSON(JSON.parse(text)); // already validated
 * validatePlan(edited);                        // throws PlanError('BARS_OVERLAP', ...) for two BARs on one address
 */
export function validatePlan(plan: MappingPlan): void {
  const first = planViolations(plan)[0];
  if (first) throw first;
}

/**
 * Every soundness violation of `plan`, each a PlanError with a code and the BAR concerned (empty: sound).
 * Codes: `BAD_GUEST_SIZE`, `BAR_TOO_LARGE`, `BAD_SIZE_MASK`, `BAR_WRAPS`, `BAR_ABOVE_4G`, `BARS_OVERLAP`,
 * `BAD_MAPPING`, `MAPPING_BEYOND_REGION`, `MAPPING_BEYOND_BAR`, `MAPPINGS_OVERLAP`, `BAD_GPA`,
 * `MSIX_OUTSIDE_BAR`, `MSIX_MAPPED`, `BAD_COVERAGE`, `BAD_SUSPENDED`, `BAD_ORDER`, `BAD_TRAPPED`.
 * @throws PlanError for a malformed plan (types and ranges, as validatePlan), since nothing can be checked then.
 */
export function planViolations(plan: MappingPlan): PlanError[] {
  checkPlanShape(plan);
  const violations = plan.bars.flatMap((bar) => barViolations(bar, plan.pageSize));
  violations.push(...overlappingBars(plan.bars));
  return violations;
}

// ---- shape: types and ranges of every field -----------------------------------------------------

function checkPlanShape(plan: unknown): asserts plan is MappingPlan {
  const o = record(plan, 'plan', BAD);
  if (typeof o.pageSize !== 'bigint') failWith('BAD_PAGE_SIZE')(`plan.pageSize must be a bigint`);
  validatePageSize(o.pageSize as bigint);
  oneOf(o.msixStrategy, ['relocate', 'hole'] as const, 'plan.msixStrategy', failWith('BAD_MSIX_STRATEGY'));
  list(o.warnings, 'plan.warnings', PLAN_LIMITS.reasons, BAD).forEach((value, i) => {
    const w = record(value, () => `plan.warnings[${i}]`, BAD);
    integer(w.bar, () => `plan.warnings[${i}].bar`, 0, 5, BAD);
    text(w.code, () => `plan.warnings[${i}].code`, 64, BAD);
    text(w.message, () => `plan.warnings[${i}].message`, PLAN_LIMITS.reasonLength, BAD);
  });
  const indices = new Set<number>();
  const claim = (index: number, at: string): void => {
    if (indices.has(index)) failWith('DUPLICATE_INDEX')(`${at}: BAR${index} is listed twice`, index);
    indices.add(index);
  };
  list(o.bars, 'plan.bars', PLAN_LIMITS.bars, BAD).forEach((bar, i) => claim(checkBarShape(bar, `plan.bars[${i}]`), `plan.bars[${i}]`));
  list(o.skipped, 'plan.skipped', PLAN_LIMITS.bars, BAD).forEach((value, i) => {
    const s = record(value, `plan.skipped[${i}]`, BAD);
    claim(barIndex(s.index, `plan.skipped[${i}].index`), `plan.skipped[${i}]`);
    text(s.reason, `plan.skipped[${i}].reason`, PLAN_LIMITS.reasonLength, BAD);
  });
}

function barIndex(value: unknown, at: string): number {
  return integer(value, at, 0, 5, failWith('NO_SUCH_BAR'));
}

function checkBarShape(value: unknown, at: string): number {
  const bar = record(value, at, BAD);
  const index = barIndex(bar.index, `${at}.index`);
  const fail = (message: string): never => BAD(message, index);
  for (const key of ['regionOffset', 'regionSize', 'guestSize', 'sizeMask'] as const) u64(bar[key], `${at}.${key}`, fail);
  if (bar.guestAddress !== undefined) u64(bar.guestAddress, `${at}.guestAddress`, failWith('BAD_GUEST_ADDRESS'));
  boolean(bar.is64Bit, `${at}.is64Bit`, fail);
  boolean(bar.prefetchable, `${at}.prefetchable`, fail);
  if (bar.msix !== undefined) checkMsixShape(bar.msix, `${at}.msix`, fail);
  const each = (key: 'mappings' | 'suspended' | 'trapped' | 'reasons', check: (item: unknown, where: () => string) => void): void => {
    list(bar[key], `${at}.${key}`, PLAN_LIMITS.ranges, fail).forEach((item, i) => check(item, () => `${at}.${key}[${i}]`));
  };
  each('mappings', (m, where) => checkMappingShape(m, where, fail));
  if (bar.suspended !== undefined) each('suspended', (m, where) => checkMappingShape(m, where, fail));
  each('trapped', (t, where) => {
    const r = record(t, where, fail);
    u64(r.barOffset, () => `${where()}.barOffset`, fail);
    u64(r.size, () => `${where()}.size`, fail);
    oneOf(r.kind, TRAP_KINDS, () => `${where()}.kind`, fail);
    if (r.fileOffset !== undefined) u64(r.fileOffset, () => `${where()}.fileOffset`, fail);
    text(r.cause, () => `${where()}.cause`, 64, fail);
  });
  each('reasons', (r, where) => {
    const note = record(r, where, fail);
    text(note.code, () => `${where()}.code`, 64, fail);
    text(note.message, () => `${where()}.message`, PLAN_LIMITS.reasonLength, fail);
  });
  return index;
}

function checkMsixShape(value: unknown, at: string, fail: (message: string) => never): void {
  const m = record(value, at, fail);
  for (const key of ['table', 'pba'] as const) {
    if (m[key] === undefined) continue;
    const r = record(m[key], `${at}.${key}`, fail);
    u64(r.offset, `${at}.${key}.offset`, fail);
    u64(r.size, `${at}.${key}.size`, fail);
  }
  boolean(m.relocated, `${at}.relocated`, fail);
}

function checkMappingShape(value: unknown, at: () => string, fail: (message: string) => never): void {
  const m = record(value, at, fail);
  for (const key of ['fileOffset', 'barOffset', 'size'] as const) u64(m[key], () => `${at()}.${key}`, fail);
  if (m.gpa !== undefined) u64(m.gpa, () => `${at()}.gpa`, fail);
  oneOf(m.prot, ['read', 'read-write'] as const, () => `${at()}.prot`, fail);
}

// ---- soundness ------------------------------------------------------------------------------------

function barViolations(bar: PlannedBar, page: bigint): PlanError[] {
  const out: PlanError[] = [];
  const add = (code: string, message: string): void => {
    out.push(new PlanError(code, `BAR${bar.index}: ${message}`, bar.index));
  };
  checkSize(bar, add);
  checkPlacement(bar, add);
  const mapped = checkMappings(bar, bar.mappings, page, add, true);
  if (bar.suspended !== undefined) {
    if (bar.mappings.length > 0) add('BAD_SUSPENDED', 'has both direct and suspended mappings');
    checkMappings(bar, bar.suspended, page, add, false);
  }
  checkMsix(bar, mapped, add);
  checkCoverage(bar, mapped, add);
  checkTrapped(bar, add);
  return out;
}

/** Sorted lists (the locator binary-searches them) and file offsets that stay inside the region. */
function checkTrapped(bar: PlannedBar, add: Add): void {
  const sorted = (list: readonly { barOffset: bigint }[]): boolean => list.every((x, i) => i === 0 || list[i - 1]!.barOffset < x.barOffset);
  if (!sorted(bar.mappings) || !sorted(bar.trapped)) add('BAD_ORDER', 'mappings and trapped ranges must be sorted by barOffset');
  for (const t of bar.trapped) {
    const where = `trapped ${t.kind} ${hex(t.barOffset)}+${hex(t.size)}`;
    if ((t.kind === 'padding') !== (t.fileOffset === undefined)) {
      add('BAD_TRAPPED', `${where}: a file offset is required except for padding`);
    }
    if (t.kind === 'device' && t.fileOffset !== undefined && t.fileOffset + t.size > bar.regionSize) {
      add('BAD_TRAPPED', `${where}: file offset beyond the region`);
    }
  }
}

type Add = (code: string, message: string) => void;

function checkSize(bar: PlannedBar, add: Add): void {
  const { guestSize } = bar;
  if (!isPowerOfTwo(guestSize)) add('BAD_GUEST_SIZE', `guest size ${hex(guestSize)} is not a power of two`);
  if (guestSize > MAX_BAR_SIZE) add('BAR_TOO_LARGE', `guest size ${hex(guestSize)} is larger than 2^63`);
  if (bar.regionSize > guestSize) add('BAD_GUEST_SIZE', `guest size ${hex(guestSize)} is smaller than the region (${hex(bar.regionSize)})`);
  if (!bar.is64Bit && guestSize > MAX_32BIT_BAR_SIZE) {
    add('BAR_TOO_LARGE', `32-bit BAR of ${hex(guestSize)} bytes: it must be smaller than 4 GiB`);
  }
  const expectedMask = ~(guestSize - 1n) & (bar.is64Bit ? U64_MASK : U32_MASK);
  if (bar.sizeMask !== expectedMask || bar.sizeMask === 0n) {
    add('BAD_SIZE_MASK', `size mask ${hex(bar.sizeMask)} is not ${hex(expectedMask)} (non-zero) for ${hex(guestSize)}`);
  }
}

/**
 * Checks one BAR's placement on its own (no wrap past 2^64; a 32-bit BAR below 4 GiB): the cheap check a
 * BAR move needs; `validatePlan` adds the overlap with other BARs.
 * @throws PlanError `BAR_WRAPS` or `BAR_ABOVE_4G`.
 */
export function validateBarPlacement(bar: PlannedBar): void {
  checkPlacement(bar, (code, message) => {
    throw new PlanError(code, `BAR${bar.index}: ${message}`, bar.index);
  });
}

function checkPlacement(bar: PlannedBar, add: Add): void {
  const base = bar.guestAddress;
  if (base === undefined) return;
  const end = base + bar.guestSize;
  if (end > U64_LIMIT) add('BAR_WRAPS', `guest range ${hex(base)}+${hex(bar.guestSize)} wraps past 2^64`);
  else if (!bar.is64Bit && end > U32_LIMIT) {
    add('BAR_ABOVE_4G', `32-bit BAR at ${hex(base)}+${hex(bar.guestSize)} does not sit below 4 GiB`);
  }
}

/** Checks each mapping; returns their guest spans, sorted. */
function checkMappings(bar: PlannedBar, mappings: readonly DirectMapping[], page: bigint, add: Add, placed: boolean): Span[] {
  const fileLimit = alignUp(bar.regionSize, page);
  const spans: Span[] = [];
  for (const m of mappings) {
    const where = `mapping ${hex(m.barOffset)}+${hex(m.size)}`;
    if (m.size === 0n || !isAligned(m.size, page)) add('BAD_MAPPING', `${where}: size not a positive page multiple`);
    if (!isAligned(m.barOffset, page) || !isAligned(m.fileOffset, page)) add('BAD_MAPPING', `${where}: offset not page-aligned`);
    if (m.fileOffset + m.size > fileLimit) add('MAPPING_BEYOND_REGION', `${where}: beyond PAGE_ALIGN(region size) ${hex(fileLimit)}`);
    if (m.barOffset + m.size > bar.guestSize) add('MAPPING_BEYOND_BAR', `${where}: beyond the guest BAR`);
    checkGpa(bar, m, page, placed, where, add);
    spans.push(span(m.barOffset, m.barOffset + m.size));
  }
  spans.sort(byStart);
  for (let i = 1; i < spans.length; i++) {
    if (overlaps(spans[i - 1]!, spans[i]!)) add('MAPPINGS_OVERLAP', `mapping at ${hex(spans[i]!.start)} overlaps another mapping`);
  }
  return spans;
}

function checkGpa(bar: PlannedBar, m: DirectMapping, page: bigint, placed: boolean, where: string, add: Add): void {
  if (!placed || bar.guestAddress === undefined) {
    if (m.gpa !== undefined) {
      add('BAD_GPA', `${where}: has GPA ${hex(m.gpa)} but ${placed ? 'the BAR has no guest address' : 'is suspended'}`);
    }
    return;
  }
  if (m.gpa !== bar.guestAddress + m.barOffset) {
    add('BAD_GPA', `${where}: GPA ${m.gpa === undefined ? 'missing' : hex(m.gpa)}, expected BAR base + offset`);
  }
  else if (!isAligned(m.gpa, page)) add('BAD_GPA', `${where}: GPA ${hex(m.gpa)} not page-aligned`);
}

function checkMsix(bar: PlannedBar, mapped: readonly Span[], add: Add): void {
  for (const r of [bar.msix?.table, bar.msix?.pba]) {
    if (!r) continue;
    const where = `MSI-X range ${hex(r.offset)}+${hex(r.size)}`;
    if (r.size === 0n || r.offset + r.size > bar.guestSize) {
      add('MSIX_OUTSIDE_BAR', `${where} is empty or not inside the ${hex(bar.guestSize)} guest BAR`);
    }
    if (mapped.some((m) => overlaps(m, span(r.offset, r.offset + r.size)))) add('MSIX_MAPPED', `${where} is directly mapped`);
  }
}

/** Mappings and trapped ranges together tile [0, guestSize) exactly. */
function checkCoverage(bar: PlannedBar, mapped: readonly Span[], add: Add): void {
  const pieces = [...mapped, ...bar.trapped.map((t) => span(t.barOffset, t.barOffset + t.size))].sort(byStart);
  let cursor = 0n;
  for (const piece of pieces) {
    if (piece.end <= piece.start) return add('BAD_COVERAGE', `empty range at ${hex(piece.start)}`);
    if (piece.start !== cursor) {
      return add('BAD_COVERAGE', `${piece.start > cursor ? 'gap' : 'overlap'} at ${hex(cursor < piece.start ? cursor : piece.start)}`);
    }
    cursor = piece.end;
  }
  if (cursor !== bar.guestSize) add('BAD_COVERAGE', `coverage ends at ${hex(cursor)}, guest BAR is ${hex(bar.guestSize)}`);
}

function overlappingBars(bars: readonly PlannedBar[]): PlanError[] {
  const placed = bars
    .filter((b) => b.guestAddress !== undefined)
    .map((b) => ({ index: b.index, range: span(b.guestAddress!, b.guestAddress! + b.guestSize) }))
    .sort((a, b) => byStart(a.range, b.range));
  const out: PlanError[] = [];
  for (let i = 1; i < placed.length; i++) {
    const [a, b] = [placed[i - 1]!, placed[i]!];
    if (overlaps(a.range, b.range)) {
      const first = `BAR${a.index} ${hex(a.range.start)}+${hex(a.range.end - a.range.start)}`;
      out.push(new PlanError('BARS_OVERLAP', `${first} and BAR${b.index} at ${hex(b.range.start)} overlap in guest space`, b.index));
    }
  }
  return out;
}

function byStart(a: Span, b: Span): number {
  return compareBigint(a.start, b.start);
}

