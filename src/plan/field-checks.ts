/**
 * Runtime checks for values that TypeScript types promise but a caller, a file or a fuzzer may break:
 * each throws the PlanError code it is given, naming the path of the bad field. Shared by
 * validateDescription and validatePlan, so both refuse wrong types and out-of-range numbers the same way.
 */
import { PlanError } from './errors.js';
import { describeValue } from './page-math.js';

export const U64_LIMIT = 1n << 64n;
export const U32_MAX = 0xffff_ffff;

/** Fails with a PlanError of a fixed code; `bar` is attached when the field belongs to one BAR. */
export type Fail = (message: string, bar?: number) => never;

export function failWith(code: string): Fail {
  return (message, bar) => {
    throw new PlanError(code, message, bar);
  };
}

/** A field's path for messages; a function when building the string for every element would cost too much. */
export type Path = string | (() => string);

function path(at: Path): string {
  return typeof at === 'string' ? at : at();
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function record(value: unknown, at: Path, fail: Fail): Record<string, unknown> {
  if (!isRecord(value)) fail(`${path(at)} must be an object, got ${describeValue(value)}`);
  return value;
}

/** An array of at most `max` elements (the bound keeps hostile input linear and small). */
export function list(value: unknown, at: Path, max: number, fail: Fail): readonly unknown[] {
  if (!Array.isArray(value)) fail(`${path(at)} must be an array, got ${describeValue(value)}`);
  const array = value as unknown[];
  if (array.length > max) fail(`${path(at)} has ${array.length} entries, more than the ${max} allowed`);
  return array;
}

export function u64(value: unknown, at: Path, fail: Fail): bigint {
  if (typeof value !== 'bigint' || value < 0n || value >= U64_LIMIT) fail(`${path(at)} must be a u64 bigint, got ${describeValue(value)}`);
  return value;
}

/** An integer number in [min, max] (safe integers only: no NaN, Infinity, fractions or bigints). */
export function integer(value: unknown, at: Path, min: number, max: number, fail: Fail): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    fail(`${path(at)} must be an integer in [${min}, ${max}], got ${describeValue(value)}`);
  }
  return value;
}

export function boolean(value: unknown, at: Path, fail: Fail): boolean {
  if (typeof value !== 'boolean') fail(`${path(at)} must be a boolean, got ${describeValue(value)}`);
  return value;
}

export function text(value: unknown, at: Path, maxLength: number, fail: Fail): string {
  if (typeof value !== 'string') fail(`${path(at)} must be a string, got ${describeValue(value)}`);
  if ((value).length > maxLength) fail(`${path(at)} is ${(value).length} characters long, more than ${maxLength}`);
  return value;
}

export function oneOf<T extends string>(value: unknown, choices: readonly T[], at: Path, fail: Fail): T {
  if (!choices.includes(value as T)) fail(`${path(at)} must be one of ${choices.join(', ')}, got ${describeValue(value)}`);
  return value as T;
}
