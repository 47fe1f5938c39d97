/**
 * Struct layouts as data: one table per kernel struct (C field name, byte offset, type, array count) drives
 * both its encoder and its decoder, and test/uapi/abi.test.ts checks every table against `offsetof`/`sizeof`
 * from the real headers. Encoding range-checks every field (RangeError, never a silent wrap; u64 fields take
 * bigint). Both supported targets (x86-64, aarch64) are little-endian with natural alignment.
 */
import { checkI32, checkU16, checkU32, checkU64 } from './u64.js';

/** The fixed-width field types the kernel structs use. */
export type FieldType = 'u8' | 'u16' | 'u32' | 'i32' | 'u64';

/** One field: byte offset from the struct's start, type, and element count for fixed arrays (`__u32 features[7]`). */
export interface FieldSpec {
  readonly offset: number;
  readonly type: FieldType;
  readonly count?: number;
}

/** Which headers declare a struct: the ABI test compiles a table only where the headers it has declare it. */
export type LayoutHeaders = 'common' | 'x86_64' | 'aarch64' | 'linux-6.6';

/**
 * A struct layout. Field keys are the C names (so the ABI test can ask the compiler for `offsetof`); codecs
 * read and write values under the camelCase of those names (`guest_phys_addr` is `guestPhysAddr`).
 * `flexible` names a trailing flexible array member, which starts at `size` (`__u8 data[]`).
 * Fields a library never reads (padding, reserved words) may be left out; they encode as zero.
 */
export interface StructLayout<F extends Record<string, FieldSpec> = Record<string, FieldSpec>> {
  readonly name: string;
  readonly size: number;
  readonly fields: F;
  readonly flexible?: string;
  readonly headers: LayoutHeaders;
}

/** `guest_phys_addr` → `guestPhysAddr`, at the type level. */
export type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** The JavaScript value of one field: bigint for u64, number otherwise, an array for fixed arrays. */
export type FieldValue<S extends FieldSpec> = S extends { count: number }
  ? readonly (S['type'] extends 'u64' ? bigint : number)[]
  : S['type'] extends 'u64' ? bigint : number;

/** A decoded struct: every field of the table under its camelCase name. */
export type StructValues<F extends Record<string, FieldSpec>> = { -readonly [K in keyof F & string as CamelCase<K>]: FieldValue<F[K]> };

const WIDTH: Readonly<Record<FieldType, number>> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8 };

/** `guest_phys_addr` → `guestPhysAddr`. */
function camelCase(cName: string): string {
  return cName.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Bytes one field occupies (element width times count). */
export function fieldBytes(spec: FieldSpec): number {
  return WIDTH[spec.type] * (spec.count ?? 1);
}

/**
 * Declares a layout, checking it is self-consistent: every field naturally aligned and inside `size`.
 * @throws RangeError when a field is misaligned or runs past the end (a typo in the table).
 */
export function defineStruct<const F extends Record<string, FieldSpec>>(layout: StructLayout<F>): StructLayout<F> {
  for (const [name, spec] of Object.entries(layout.fields)) {
    if (spec.offset % WIDTH[spec.type] !== 0) throw new RangeError(`${layout.name}.${name} at ${spec.offset} is not ${spec.type}-aligned`);
    if (spec.offset + fieldBytes(spec) > layout.size) throw new RangeError(`${layout.name}.${name} runs past ${layout.size} bytes`);
  }
  return layout;
}

/** Throws RangeError unless `b` holds `size` bytes from `at`. */
export function need(b: Buffer, size: number, what: string, at = 0): void {
  if (b.length < at + size) throw new RangeError(`${what} needs ${size} bytes, buffer has ${b.length - at}`);
}

/**
 * Encodes `values` into a new zeroed buffer of `bytes` bytes (default: the struct's size; larger for a
 * request that leaves room for a trailing array or for capabilities). Missing fields stay zero.
 * @throws RangeError when a value does not fit its field; TypeError when a u64 is not a bigint.
 */
export function encodeStruct<F extends Record<string, FieldSpec>>(
  layout: StructLayout<F>, values: Partial<StructValues<F>>, bytes: number = layout.size,
): Buffer {
  checkU32(`${layout.name} size`, bytes);
  if (bytes < layout.size) throw new RangeError(`${layout.name} needs ${layout.size} bytes, asked for ${bytes}`);
  const b = Buffer.alloc(bytes);
  writeStruct(b, layout, values);
  return b;
}

/**
 * Writes `values` into `b` at byte `at` (fields not given are left as they are).
 * @throws RangeError when `b` is too short or a value does not fit its field.
 */
export function writeStruct<F extends Record<string, FieldSpec>>(
  b: Buffer, layout: StructLayout<F>, values: Partial<StructValues<F>>, at = 0,
): void {
  need(b, layout.size, layout.name, at);
  const given = values as Record<string, unknown>;
  for (const [name, spec] of Object.entries(layout.fields)) {
    const value = given[camelCase(name)];
    if (value !== undefined) writeField(b, at, name, spec, value);
  }
}

/**
 * Reads every field of `layout` from `b` at byte `at`.
 * @throws RangeError when `b` is shorter than the struct.
 */
export function decodeStruct<F extends Record<string, FieldSpec>>(layout: StructLayout<F>, b: Buffer, at = 0): StructValues<F> {
  need(b, layout.size, layout.name, at);
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(layout.fields)) out[camelCase(name)] = readField(b, at, spec);
  return out as StructValues<F>;
}

function writeField(b: Buffer, at: number, name: string, spec: FieldSpec, value: unknown): void {
  if (spec.count === undefined) {
    writeScalar(b, at + spec.offset, name, spec.type, value);
    return;
  }
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of ${spec.count} ${spec.type}`);
  if (value.length > spec.count) throw new RangeError(`${name} has ${value.length} elements, the field holds ${spec.count}`);
  value.forEach((v, i) => writeScalar(b, at + spec.offset + i * WIDTH[spec.type], `${name}[${i}]`, spec.type, v));
}

function writeScalar(b: Buffer, at: number, name: string, type: FieldType, value: unknown): void {
  switch (type) {
    case 'u8': b.writeUInt8(checkU8(name, value as number), at); return;
    case 'u16': b.writeUInt16LE(checkU16(name, value as number), at); return;
    case 'u32': b.writeUInt32LE(checkU32(name, value as number), at); return;
    case 'i32': b.writeInt32LE(checkI32(name, value as number), at); return;
    case 'u64': b.writeBigUInt64LE(checkU64(name, value as bigint), at); return;
  }
}

function readField(b: Buffer, at: number, spec: FieldSpec): number | bigint | (number | bigint)[] {
  if (spec.count === undefined) return readScalar(b, at + spec.offset, spec.type);
  return Array.from({ length: spec.count }, (_, i) => readScalar(b, at + spec.offset + i * WIDTH[spec.type], spec.type));
}

function readScalar(b: Buffer, at: number, type: FieldType): number | bigint {
  switch (type) {
    case 'u8': return b.readUInt8(at);
    case 'u16': return b.readUInt16LE(at);
    case 'u32': return b.readUInt32LE(at);
    case 'i32': return b.readInt32LE(at);
    case 'u64': return b.readBigUInt64LE(at);
  }
}

function checkU8(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError(`${name} ${value} is outside u8`);
  return value;
}
