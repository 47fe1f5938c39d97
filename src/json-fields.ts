/**
 * Typed, strict readers for untrusted JSON (captured descriptions, saved plans). Each layer supplies how a
 * bad field fails, so the error is that layer's typed error naming the JSON path. Strict means: no
 * coercion (`"true"` is not a boolean, `"4096"` not a number), numbers in a stated range, u64 only as
 * short `"0x..."`/decimal strings, unknown keys refused, and every list and string bounded, so hostile
 * input fails fast with a typed error in time and memory linear in what was read.
 */
import { parseU64 } from './uapi/u64.js';

export interface JsonFields {
  /** A plain object; with `keys`, any other key (a typo, `__proto__`, a field from the future) is refused. */
  readonly object: (value: unknown, at: string, keys?: readonly string[]) => Record<string, unknown>;
  /** An array of at most `max` elements (default 65,536). */
  readonly array: (value: unknown, at: string, max?: number) => unknown[];
  /** A string of at most `maxLength` characters (default 1 MiB). */
  readonly string: (value: unknown, at: string, maxLength?: number) => string;
  /** An integer in [0, max] (default max 2^32 - 1). */
  readonly int: (value: unknown, at: string, max?: number) => number;
  /** A u64 written as a `"0x..."` (or decimal) string. */
  readonly u64: (value: unknown, at: string) => bigint;
  /** A boolean; `fallback` when the key is absent (undefined), an error for any other type. */
  readonly bool: (value: unknown, at: string, fallback?: boolean) => boolean;
}

const DEFAULT_MAX_ITEMS = 65_536;
const DEFAULT_MAX_LENGTH = 1 << 20;
/** "0x" + 16 hex digits, or 20 decimal digits: anything longer is not a u64 we wrote. */
const MAX_U64_LITERAL = 20;

export function jsonFields(fail: (message: string) => never): JsonFields {
  const object = (value: unknown, at: string, keys?: readonly string[]): Record<string, unknown> => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${at} must be an object`);
    const o = value as Record<string, unknown>;
    if (keys) {
      for (const key of Object.keys(o)) {
        if (!keys.includes(key)) fail(`${at} has an unknown key ${JSON.stringify(key.slice(0, 40))}`);
      }
    }
    return o;
  };
  return {
    object,
    array: (value, at, max = DEFAULT_MAX_ITEMS) => {
      if (!Array.isArray(value)) fail(`${at} must be an array`);
      const items = value as unknown[];
      if (items.length > max) fail(`${at} has ${items.length} entries, more than ${max}`);
      return items;
    },
    string: (value, at, maxLength = DEFAULT_MAX_LENGTH) => {
      if (typeof value !== 'string') fail(`${at} must be a string`);
      if ((value).length > maxLength) fail(`${at} is longer than ${maxLength} characters`);
      return value;
    },
    int: (value, at, max = 0xffff_ffff) => {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
        fail(`${at} must be an integer in [0, ${max}]`);
      }
      return (value) + 0; // -0 becomes 0
    },
    u64: (value, at) => {
      if (typeof value !== 'string') fail(`${at} must be a "0x..." string`);
      if ((value).length > MAX_U64_LITERAL) fail(`${at} is not a u64 literal (longer than ${MAX_U64_LITERAL} characters)`);
      try {
        return parseU64(at, value);
      } catch (error) {
        return fail((error as Error).message);
      }
    },
    bool: (value, at, fallback) => {
      if (value === undefined && fallback !== undefined) return fallback;
      if (typeof value !== 'boolean') fail(`${at} must be true or false`);
      return value;
    },
  };
}
