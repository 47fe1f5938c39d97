/**
 * Argument checks for the mapper's public methods: a wrong type or range is the library's typed
 * MapError (`BAD_ARGUMENT`, `DUPLICATE_BAR`, `BAD_PLAN`), never a raw TypeError from deep inside.
 */
import { validatePlan } from '../plan/validate-plan.js';
import { PlanError } from '../plan/errors.js';
import { hex } from '../errors.js';
import type { MappingPlan } from '../plan/types.js';
import { MapError, type MapStep } from './errors.js';
import type { VfioDeviceHandle } from '../vfio/device-handle.js';
import { isFrozenPlainData } from './frozen-data.js';

const U64_LIMIT = 1n << 64n;

/** A BAR index is an integer 0-5. */
export function checkBarIndex(step: MapStep, index: unknown): asserts index is number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) {
    throw new MapError(`BAR index must be an integer 0-5, got ${describe(index)}`, { step, code: 'BAD_ARGUMENT' });
  }
}

/** A guest physical address is a u64 bigint. */
export function checkGuestAddress(step: MapStep, bar: number, gpa: unknown): asserts gpa is bigint {
  if (typeof gpa !== 'bigint' || gpa < 0n || gpa >= U64_LIMIT) {
    throw new MapError(`BAR${bar}: guest address must be a u64 bigint, got ${describe(gpa)}`, { step, code: 'BAD_ARGUMENT', bar });
  }
}

/**
 * Plans that passed {@link checkPlanShape} and {@link checkPlanSoundness} and are frozen plain data all
 * the way down: they can never change, so the verdict holds for as long as the plan lives (a planner
 * plan mapped, unmapped and mapped again is checked once). Unfrozen plans are checked on every call.
 */
const soundFrozenPlans = new WeakSet<object>();

/**
 * Every check `map` makes of a plan (shape, then soundness), once per frozen plan.
 * @returns true when the plan is frozen plain data the mapper may keep as is; false when it must copy it.
 * @throws MapError as {@link checkPlanShape} and {@link checkPlanSoundness}.
 */
export function checkPlan(plan: unknown): plan is MappingPlan {
  if (typeof plan === 'object' && plan !== null && soundFrozenPlans.has(plan)) return true;
  checkPlanShape(plan);
  checkPlanSoundness(plan);
  if (!isFrozenPlainData(plan)) return false;
  soundFrozenPlans.add(plan);
  return true;
}

/**
 * The structural checks `map` needs before touching the kernel: a plan object, a power-of-two page size,
 * each BAR index valid and listed once, every direct mapping with a page-aligned GPA and size.
 */
export function checkPlanShape(plan: unknown): asserts plan is MappingPlan {
  const fail = (message: string, code = 'BAD_PLAN', bar?: number): never => {
    throw new MapError(message, { step: 'validate', code, ...(bar !== undefined && { bar }) });
  };
  if (typeof plan !== 'object' || plan === null) return fail(`plan must be a MappingPlan object, got ${describe(plan)}`, 'BAD_ARGUMENT');
  const { pageSize, bars } = plan as Partial<MappingPlan>;
  if (typeof pageSize !== 'bigint' || pageSize < 4096n || (pageSize & (pageSize - 1n)) !== 0n) {
    return fail(`plan page size ${describe(pageSize)} is not a power of two >= 4096`);
  }
  if (!Array.isArray(bars)) return fail('plan.bars must be an array');
  const seen = new Set<number>();
  for (const bar of bars as unknown[]) {
    const index = (bar as { index?: unknown } | null)?.index;
    checkBarIndex('validate', index);
    if (seen.has(index)) fail(`BAR${index} is listed twice in the plan`, 'DUPLICATE_BAR', index);
    seen.add(index);
    const mappings = (bar as { mappings?: unknown }).mappings;
    if (!Array.isArray(mappings)) fail(`BAR${index}: mappings must be an array`, 'BAD_PLAN', index);
    for (const m of mappings as { gpa?: unknown; size?: unknown; fileOffset?: unknown }[]) {
      if (m.gpa === undefined) fail(`BAR${index}: a mapping has no guest address; plan with barAddresses`, 'NO_GUEST_ADDRESS', index);
      checkGuestAddress('validate', index, m.gpa);
      const aligned = (v: unknown): boolean => typeof v === 'bigint' && v >= 0n && v % pageSize === 0n;
      if (!aligned(m.gpa) || !aligned(m.fileOffset) || !aligned(m.size) || m.size === 0n || m.gpa + (m.size as bigint) > U64_LIMIT) {
        fail(`BAR${index}: mapping at gpa ${hex(m.gpa)} is not a page-aligned range that fits in 64 bits`, 'BAD_PLAN', index);
      }
    }
  }
}

/** The mapper's constructor: a device handle with an fd and syscalls, a KvmVm, and well-typed options. */
export function checkConstructorArguments(device: unknown, vm: unknown, options: unknown): void {
  const fail = (message: string): never => {
    throw new MapError(message, { step: 'validate', code: 'BAD_ARGUMENT' });
  };
  const handle = device as Partial<VfioDeviceHandle> | null;
  const hasSyscalls = typeof handle?.syscalls === 'object' && handle.syscalls !== null;
  if (typeof handle !== 'object' || handle === null || !Number.isInteger(handle.fd) || !hasSyscalls) {
    fail(`device must be an open VfioDeviceHandle (fd, syscalls), got ${describe(device)}`);
  }
  // Duck-typed, not instanceof: two copies of the package in one process must still work together.
  const slots = vm as Partial<Record<'addSlot' | 'moveSlot' | 'removeSlot', unknown>> | null;
  const slotMethods = [slots?.addSlot, slots?.moveSlot, slots?.removeSlot];
  if (typeof slots !== 'object' || slots === null || slotMethods.some((f) => typeof f !== 'function')) {
    fail(`vm must be a KvmVm, got ${describe(vm)}`);
  }
  if (typeof options !== 'object' || options === null) return fail(`options must be an object, got ${describe(options)}`);
  const { dmaMap, hugePfnAlign, logger } = options as Record<string, unknown>;
  for (const [name, value] of [['dmaMap', dmaMap], ['hugePfnAlign', hugePfnAlign]] as const) {
    if (value !== undefined && typeof value !== 'boolean') fail(`options.${name} must be a boolean, got ${describe(value)}`);
  }
  const levels = ['debug', 'info', 'warn'] as const;
  const lacksLevel = (l: (typeof levels)[number]): boolean => typeof (logger as Record<string, unknown>)[l] !== 'function';
  if (logger !== undefined && (typeof logger !== 'object' || logger === null || levels.some(lacksLevel))) {
    fail('options.logger must have debug, info and warn functions');
  }
}

function describe(value: unknown): string {
  if (typeof value === 'bigint') return hex(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined) return String(value);
  return value === null ? 'null' : `a ${typeof value}`;
}

/**
 * The plan's soundness beyond its shape (no overlapping BARs, representable placements, every trapped byte
 * backed): the planner's own `validatePlan`, so a hand-edited or replayed plan is held to the same rules.
 * @throws MapError `BAD_PLAN` with the PlanError (and its code) as `cause`.
 */
export function checkPlanSoundness(plan: MappingPlan): void {
  try {
    validatePlan(plan);
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
    throw new MapError(
      `unsound plan (${error.code}): ${error.message}`,
      { step: 'validate', code: 'BAD_PLAN', ...(error.bar !== undefined && { bar: error.bar }) },
      { cause: error },
    );
  }
}

