/**
 * A flattened device tree (DTB, version 17) writer: nodes and properties in the order the VMM adds them,
 * property names deduplicated in the strings block, every cell big-endian. Just enough of the format
 * (Devicetree Specification, chapter 5) for a VMM to describe its machine to Linux.
 */

const FDT_MAGIC = 0xd00d_feed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_END = 9;
const HEADER_SIZE = 40;
/** One empty memory-reservation entry (address 0, size 0) ends the block. */
const RESERVE_MAP_SIZE = 16;

/** A property value: raw bytes, a string, a string list, or cells. */
export type FdtValue = Buffer | string | string[] | { u32: number[] } | { u64: bigint[] } | { empty: true };

export class FdtWriter {
  readonly #struct: Buffer[] = [];
  readonly #strings = new Map<string, number>();
  #stringsSize = 0;
  #depth = 0;

  /** Opens a node; the root is `''`. */
  beginNode(name: string): this {
    this.#token(FDT_BEGIN_NODE);
    this.#struct.push(padded(Buffer.from(`${name}\0`, 'utf8')));
    this.#depth++;
    return this;
  }

  endNode(): this {
    if (this.#depth === 0) throw new Error('FDT: endNode without beginNode');
    this.#token(FDT_END_NODE);
    this.#depth--;
    return this;
  }

  property(name: string, value: FdtValue): this {
    if (this.#depth === 0) throw new Error(`FDT: property ${name} outside a node`);
    const bytes = encodeValue(value);
    const header = Buffer.alloc(12);
    header.writeUInt32BE(FDT_PROP, 0);
    header.writeUInt32BE(bytes.length, 4);
    header.writeUInt32BE(this.#nameOffset(name), 8);
    this.#struct.push(header, padded(bytes));
    return this;
  }

  /** The finished blob. Every node must be closed. */
  finish(): Buffer {
    if (this.#depth !== 0) throw new Error(`FDT: ${this.#depth} node(s) left open`);
    this.#token(FDT_END);
    const struct = Buffer.concat(this.#struct);
    const strings = Buffer.concat([...this.#strings.keys()].map((s) => Buffer.from(`${s}\0`, 'utf8')));
    const reserveOffset = HEADER_SIZE;
    const structOffset = reserveOffset + RESERVE_MAP_SIZE;
    const stringsOffset = structOffset + struct.length;
    const total = stringsOffset + strings.length;
    const header = Buffer.alloc(HEADER_SIZE);
    const fields = [FDT_MAGIC, total, structOffset, stringsOffset, reserveOffset, 17, 16, 0, strings.length, struct.length];
    fields.forEach((v, i) => header.writeUInt32BE(v, i * 4));
    return Buffer.concat([header, Buffer.alloc(RESERVE_MAP_SIZE), struct, strings]);
  }

  #token(token: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(token, 0);
    this.#struct.push(b);
  }

  #nameOffset(name: string): number {
    let offset = this.#strings.get(name);
    if (offset === undefined) {
      offset = this.#stringsSize;
      this.#strings.set(name, offset);
      this.#stringsSize += Buffer.byteLength(name, 'utf8') + 1;
    }
    return offset;
  }
}

function encodeValue(value: FdtValue): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(`${value}\0`, 'utf8');
  if (Array.isArray(value)) return Buffer.from(value.map((s) => `${s}\0`).join(''), 'utf8');
  if ('empty' in value) return Buffer.alloc(0);
  if ('u32' in value) {
    const b = Buffer.alloc(value.u32.length * 4);
    value.u32.forEach((v, i) => b.writeUInt32BE(checkU32(v), i * 4));
    return b;
  }
  const b = Buffer.alloc(value.u64.length * 8);
  value.u64.forEach((v, i) => b.writeBigUInt64BE(BigInt.asUintN(64, v) === v ? v : badU64(v), i * 8));
  return b;
}

function checkU32(v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`FDT cell ${v} is not a u32`);
  return v;
}

function badU64(v: bigint): never {
  throw new RangeError(`FDT value ${v} is not a u64`);
}

/** Pads to the 4-byte alignment the structure block requires. */
function padded(b: Buffer): Buffer {
  const rest = b.length % 4;
  return rest === 0 ? b : Buffer.concat([b, Buffer.alloc(4 - rest)]);
}
