/**
 * Typed readers for untrusted JSON (captured descriptions, saved plans). Each layer supplies how a bad
 * field fails, so the error is that layer's typed error naming the JSON path.
 */
import { parseU64 } from './uapi/u64.js';

export interface JsonFields {
  readonly object: (value: unknown, at: string) => Record<string, unknown>;
  readonly array: (value: unknown, at: string) => unknown[];
  readonly string: (value: unknown, at: string) => string;
  /** A non-negative integer. */
  readonly int: (value: unknown, at: string) => number;
  /** A u64 written as a `"0x..."` (or decimal) string. */
  readonly u64: (value: unknown, at: string) => bigint;
}

export function jsonFields(fail: (message: string) => never): JsonFields {
  return {
    object: (value, at) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${at} must be an object`);
      return value as Record<string, unknown>;
    },
    array: (value, at) => {
      if (!Array.isArray(value)) fail(`${at} must be an array`);
      return value as unknown[];
    },
    string: (value, at) => {
      if (typeof value !== 'string') fail(`${at} must be a string`);
      return value;
    },
    int: (value, at) => {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) fail(`${at} must be a non-negative integer`);
      return value;
    },
    u64: (value, at) => {
      if (typeof value !== 'string') fail(`${at} must be a "0x..." string`);
      try {
        return parseU64(at, value);
      } catch (error) {
        return fail((error as Error).message);
      }
    },
  };
}
