import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseRegionCapabilities } from '../../src/vfio/region-caps.js';
import { VfioError } from '../../src/vfio/errors.js';
import { decodeRegionInfo } from '../../src/uapi/vfio.js';
import { encodeCapChain } from '../fake/fake-kernel.js';

/** The exact reply Linux 6.1 gives for QEMU's NVMe BAR0 on a 64 KiB-page arm64 host. */
const NVME_BAR0_REPLY = Buffer.from(
  // argsz 40, flags 0xf, index 0, cap_offset 32, size 0x4000, offset 0
  '28000000' + '0f000000' + '00000000' + '20000000' + '0040000000000000' + '0000000000000000' +
  '0300' + '0100' + '00000000', // cap id 3 (MSIX_MAPPABLE) version 1, next 0
  'hex',
);

function parse(buffer: Buffer, regionSize = 0x10000n) {
  const info = decodeRegionInfo(buffer);
  return parseRegionCapabilities({ buffer, argsz: info.argsz, capOffset: info.capOffset, regionIndex: 0, regionSize });
}

function reply(chain: Buffer, argsz = 32 + chain.length): Buffer {
  const b = Buffer.alloc(32 + chain.length);
  b.writeUInt32LE(argsz, 0);
  b.writeUInt32LE(0xf, 4);
  b.writeUInt32LE(32, 12);
  b.writeBigUInt64LE(0x10000n, 16);
  chain.copy(b, 32);
  return b;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(VfioError);
    return (error as VfioError).code;
  }
  return 'no error';
}

describe('region capability chain', () => {
  it('parses the QEMU NVMe BAR0 reply from Linux 6.1 (64 KiB pages)', () => {
    const info = decodeRegionInfo(NVME_BAR0_REPLY);
    expect(info).toEqual({ argsz: 40, flags: 0xf, index: 0, capOffset: 32, size: 0x4000n, offset: 0n });
    expect(parse(NVME_BAR0_REPLY, info.size)).toEqual([{ kind: 'msix-mappable', id: 3, version: 1 }]);
  });

  it('parses sparse-mmap chains with 1..8 areas, type and unknown capabilities, in chain order', () => {
    for (let n = 1; n <= 8; n++) {
      const areas = Array.from({ length: n }, (_, i) => ({ offset: BigInt(i) * 0x2000n, size: 0x1000n }));
      const chain = encodeCapChain([
        { kind: 'sparse-mmap', id: 1, version: 1, areas },
        { kind: 'type', id: 2, version: 1, type: 0x8086_0000, subtype: 3 },
        { kind: 'unknown', id: 0x42, version: 2, data: 'deadbeefcafef00d' },
      ], 32);
      expect(parse(reply(chain))).toEqual([
        { kind: 'sparse-mmap', id: 1, version: 1, areas },
        { kind: 'type', id: 2, version: 1, type: 0x8086_0000, subtype: 3 },
        { kind: 'unknown', id: 0x42, version: 2, data: 'deadbeefcafef00d' },
      ]);
    }
  });

  it('sorts unsorted areas, drops size-0 areas, accepts nr_areas = 0', () => {
    const chain = encodeCapChain(
      [{
        kind: 'sparse-mmap',
        id: 1,
        version: 1,
        areas: [{ offset: 0x8000n, size: 0x1000n }, { offset: 0n, size: 0n }, { offset: 0n, size: 0x1000n }],
      }],
      32,
    );
    expect(parse(reply(chain))).toEqual([{
      kind: 'sparse-mmap',
      id: 1,
      version: 1,
      areas: [{ offset: 0n, size: 0x1000n }, { offset: 0x8000n, size: 0x1000n }],
    }]);
    const empty = encodeCapChain([{ kind: 'sparse-mmap', id: 1, version: 1, areas: [] }], 32);
    expect(parse(reply(empty))).toEqual([{ kind: 'sparse-mmap', id: 1, version: 1, areas: [] }]);
  });

  it('names each defect with a typed VfioError', () => {
    const sparse = (areas: { offset: bigint; size: bigint }[]) => encodeCapChain([{ kind: 'sparse-mmap', id: 1, version: 1, areas }], 32);
    // a loop: next points back at itself
    const loop = encodeCapChain([{ kind: 'msix-mappable', id: 3, version: 1 }], 32);
    loop.writeUInt32LE(32, 4);
    expect(codeOf(() => parse(reply(loop)))).toBe('CAP_CHAIN_LOOP');
    // next beyond argsz
    const far = encodeCapChain([{ kind: 'msix-mappable', id: 3, version: 1 }], 32);
    far.writeUInt32LE(4096, 4);
    expect(codeOf(() => parse(reply(far)))).toBe('CAP_OUT_OF_BOUNDS');
    // next into struct vfio_region_info
    far.writeUInt32LE(8, 4);
    expect(codeOf(() => parse(reply(far)))).toBe('CAP_OUT_OF_BOUNDS');
    // misaligned
    far.writeUInt32LE(34, 4);
    expect(codeOf(() => parse(reply(Buffer.concat([far, Buffer.alloc(16)]))))).toBe('CAP_MISALIGNED');
    // nr_areas larger than fits
    const many = sparse([{ offset: 0n, size: 0x1000n }]);
    many.writeUInt32LE(1000, 8);
    expect(codeOf(() => parse(reply(many)))).toBe('SPARSE_TOO_MANY_AREAS');
    expect(codeOf(() => parse(reply(sparse([{ offset: 0xf000n, size: 0x2000n }]))))).toBe('SPARSE_AREA_OUTSIDE_REGION');
    expect(codeOf(() => parse(reply(sparse([{ offset: 0xffff_ffff_ffff_f000n, size: 0x2000n }]))))).toBe('SPARSE_AREA_OUTSIDE_REGION');
    expect(
      codeOf(() => parse(reply(sparse([{ offset: 0n, size: 0x2000n }, { offset: 0x1000n, size: 0x1000n }]))))
    ).toBe('SPARSE_AREAS_OVERLAP');
    // a header cut off by argsz
    expect(codeOf(() => parse(reply(loop, 36)))).toBe('CAP_OUT_OF_BOUNDS');
    // CAPS with cap_offset 0 in a final reply
    expect(
      codeOf(() => parseRegionCapabilities({ buffer: reply(loop), argsz: 40, capOffset: 0, regionIndex: 0, regionSize: 0x1000n }))
    ).toBe('CAP_OFFSET_MISSING');
  });

  it('error messages name the region', () => {
    const loop = encodeCapChain([{ kind: 'msix-mappable', id: 3, version: 1 }], 32);
    loop.writeUInt32LE(32, 4);
    const b = reply(loop);
    expect(
      () => parseRegionCapabilities({ buffer: b, argsz: b.length, capOffset: 32, regionIndex: 4, regionSize: 0x1000n })
    ).toThrow(/region 4 capability chain: offset 0x20 visited twice/);
  });
});

describe('capability chain fuzzing (100 000 chains)', () => {
  const check = (buffer: Buffer, argsz: number, capOffset: number, regionSize: bigint): void => {
    try {
      const caps = parseRegionCapabilities({ buffer, argsz, capOffset, regionIndex: 1, regionSize });
      expect(Array.isArray(caps)).toBe(true);
    } catch (error) {
      if (!(error instanceof VfioError)) throw error;
    }
  };

  const capArb = fc.oneof(
    fc.record({
      kind: fc.constant('sparse-mmap' as const),
      id: fc.constant(1 as const),
      version: fc.integer({ min: 0, max: 3 }),
      areas: fc.array(
        fc.record({ offset: fc.bigInt({ min: 0n, max: 0x2_0000n }), size: fc.bigInt({ min: 0n, max: 0x2_0000n }) }),
        { maxLength: 6 },
      ),
    }),
    fc.record({
      kind: fc.constant('type' as const),
      id: fc.constant(2 as const),
      version: fc.integer({ min: 0, max: 3 }),
      type: fc.nat(),
      subtype: fc.nat(),
    }),
    fc.record({ kind: fc.constant('msix-mappable' as const), id: fc.constant(3 as const), version: fc.integer({ min: 0, max: 3 }) }),
    fc.record({
      kind: fc.constant('unknown' as const),
      id: fc.integer({ min: 4, max: 0xffff }),
      version: fc.integer({ min: 0, max: 0xffff }),
      data: fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a).toString('hex')),
    }),
  );

  it('well-formed chains, mutated in random bytes: a parse or a VfioError, never anything else', () => {
    const capsArb = fc.array(capArb, { minLength: 1, maxLength: 5 });
    const mutationsArb = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 });
    const argszDeltaArb = fc.integer({ min: -16, max: 16 });
    const regionSizeArb = fc.bigInt({ min: 0n, max: 0x4_0000n });
    fc.assert(
      fc.property(capsArb, mutationsArb, argszDeltaArb, regionSizeArb, (caps, mutations, argszDelta, regionSize) => {
        const buffer = reply(encodeCapChain(caps, 32));
        for (const [at, value] of mutations) buffer[32 + (at % (buffer.length - 32))] = value;
        check(buffer, Math.max(0, buffer.length + argszDelta), 32, regionSize);
      }),
      { numRuns: 50_000 },
    );
  });

  it('random bytes with random cap_offset and argsz: a parse or a VfioError, never anything else', () => {
    const bytesArb = fc.uint8Array({ minLength: 32, maxLength: 256 });
    const upTo300Arb = fc.integer({ min: 0, max: 300 }); // drawn separately for cap_offset and argsz
    fc.assert(
      fc.property(bytesArb, upTo300Arb, upTo300Arb, (bytes, capOffset, argsz) => {
        check(Buffer.from(bytes), argsz, capOffset, 0x1_0000n);
      }),
      { numRuns: 50_000 },
    );
  });
});
