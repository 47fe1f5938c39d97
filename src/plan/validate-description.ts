/**
 * `validateDescription`: the one gate a DeviceDescription passes before planning. It checks every field's
 * type and range (a description may come from a file, a fuzzer or a careless caller) and the device
 * geometry the planner relies on, so that planning either throws a typed PlanError here or succeeds.
 *
 * Decisions (each a typed error; nothing is silently dropped):
 * - Region sizes are u64 bigints; a BAR region is at most 2^63, a 32-bit BAR at most 2 GiB.
 * - Region, IRQ and BAR indices appear once; BAR indices are 0-5; BAR registers are consistent
 *   (an upper half follows a 64-bit BAR, BAR5 is never 64-bit).
 * - MSI-X: 1-2048 vectors; table and PBA sizes as the PCI spec derives them from the vector count;
 *   BIR 0-5; each structure 8-byte aligned, non-empty, inside an existing memory BAR's region, and the
 *   two do not overlap. A device breaking these has no MSI-X a VMM could emulate faithfully, so the plan
 *   is refused rather than built around a guess (drop `msix` from the description to plan without it).
 * - Sparse areas may overlap or extend past their region (the planner merges and clips them), but never
 *   wrap past 2^64; at most 4,096 per capability (a 64 KiB region-info reply holds 4,093).
 */
import type { DeviceDescription } from '../vfio/description.js';
import { DESCRIPTION_LIMITS, MAX_MSIX_VECTORS } from '../vfio/description-limits.js';
import { hex } from '../errors.js';
import { MAX_BAR_SIZE } from './page-math.js';
import {
  U32_MAX, U64_LIMIT, boolean, failWith, integer, list, oneOf, record, text, u64,
} from './field-checks.js';

/** Largest 32-bit BAR: its size must stay below 4 GiB, so as a power of two at most 2 GiB. */
export const MAX_32BIT_BAR_SIZE = 1n << 31n;

const BAD = failWith('BAD_DESCRIPTION');

/**
 * Checks that `d` is a DeviceDescription the planner can plan: types, ranges, unique indices, BAR register
 * consistency, BAR sizes and MSI-X geometry (see the module comment for each decision).
 * @throws PlanError with code `BAD_DESCRIPTION` (wrong type or out-of-range field), `DUPLICATE_INDEX`,
 *   `BAR_TOO_LARGE`, `BAR_REGISTERS_INCONSISTENT`, or an `MSIX_*` code (`MSIX_BAD_VECTORS`, `MSIX_BAD_BIR`,
 *   `MSIX_EMPTY`, `MSIX_SIZE_MISMATCH`, `MSIX_MISALIGNED`, `MSIX_BAR_MISSING`, `MSIX_IN_IO_BAR`,
 *   `MSIX_OUTSIDE_BAR`, `MSIX_OVERLAP`).
 * @example
 * validateDescription(descriptionFromJSON(JSON.parse(text))); // throws PlanError on an impossible device
 */
export function validateDescription(d: DeviceDescription): void {
  const o = record(d, 'description', BAD);
  text(o.bdf, 'description.bdf', DESCRIPTION_LIMITS.bdfLength, BAD);
  for (const key of ['flags', 'numRegions', 'numIrqs'] as const) integer(o[key], `description.${key}`, 0, U32_MAX, BAD);
  checkRegions(list(o.regions, 'description.regions', DESCRIPTION_LIMITS.regions, BAD));
  checkIrqs(list(o.irqs, 'description.irqs', DESCRIPTION_LIMITS.irqs, BAD));
  if (o.config !== undefined) checkConfig(o.config);
  checkBars(list(o.bars, 'description.bars', DESCRIPTION_LIMITS.bars, BAD));
  checkBarSizes(d);
  if (o.msix !== undefined) checkMsix(d);
}

function checkRegions(regions: readonly unknown[]): void {
  const seen = new Set<number>();
  regions.forEach((value, i) => {
    const at = `description.regions[${i}]`;
    const r = record(value, at, BAD);
    const index = integer(r.index, `${at}.index`, 0, U32_MAX, BAD);
    if (seen.has(index)) failWith('DUPLICATE_INDEX')(`${at}: region index ${index} appears twice`);
    seen.add(index);
    integer(r.flags, `${at}.flags`, 0, U32_MAX, BAD);
    const size = u64(r.size, `${at}.size`, BAD);
    const offset = u64(r.offset, `${at}.offset`, BAD);
    if (offset + size > U64_LIMIT) BAD(`${at}: offset ${hex(offset)} + size ${hex(size)} wraps past 2^64`);
    if (index <= 5 && size > MAX_BAR_SIZE) {
      failWith('BAR_TOO_LARGE')(`${at}: BAR${index} region of ${hex(size)} bytes is larger than 2^63`, index);
    }
    const capabilities = list(r.capabilities, `${at}.capabilities`, DESCRIPTION_LIMITS.capabilities, BAD);
    capabilities.forEach((cap, c) => checkCapability(cap, `${at}.capabilities[${c}]`));
  });
}

function checkCapability(value: unknown, at: string): void {
  const cap = record(value, at, BAD);
  const kind = oneOf(cap.kind, ['sparse-mmap', 'type', 'msix-mappable', 'unknown'] as const, `${at}.kind`, BAD);
  const expectedId = { 'sparse-mmap': 1, type: 2, 'msix-mappable': 3, unknown: undefined }[kind];
  const id = integer(cap.id, `${at}.id`, 0, 0xffff, BAD);
  if (expectedId !== undefined && id !== expectedId) BAD(`${at}.id ${id} does not match kind ${kind} (id ${expectedId})`);
  integer(cap.version, `${at}.version`, 0, 0xffff, BAD);
  if (kind === 'type') for (const key of ['type', 'subtype'] as const) integer(cap[key], `${at}.${key}`, 0, U32_MAX, BAD);
  if (kind === 'unknown') text(cap.data, `${at}.data`, DESCRIPTION_LIMITS.capabilityData, BAD);
  if (kind !== 'sparse-mmap') return;
  list(cap.areas, `${at}.areas`, DESCRIPTION_LIMITS.sparseAreas, BAD).forEach((area, a) => {
    const where = (): string => `${at}.areas[${a}]`;
    const r = record(area, where, BAD);
    const offset = u64(r.offset, () => `${where()}.offset`, BAD);
    const size = u64(r.size, () => `${where()}.size`, BAD);
    if (offset + size > U64_LIMIT) BAD(`${where()}: ${hex(offset)}+${hex(size)} wraps past 2^64`);
  });
}

function checkIrqs(irqs: readonly unknown[]): void {
  const seen = new Set<number>();
  irqs.forEach((value, i) => {
    const at = `description.irqs[${i}]`;
    const irq = record(value, at, BAD);
    const index = integer(irq.index, `${at}.index`, 0, U32_MAX, BAD);
    if (seen.has(index)) failWith('DUPLICATE_INDEX')(`${at}: irq index ${index} appears twice`);
    seen.add(index);
    integer(irq.flags, `${at}.flags`, 0, U32_MAX, BAD);
    integer(irq.count, `${at}.count`, 0, U32_MAX, BAD);
  });
}

function checkConfig(value: unknown): void {
  const c = record(value, 'description.config', BAD);
  integer(c.vendorId, 'description.config.vendorId', 0, 0xffff, BAD);
  integer(c.deviceId, 'description.config.deviceId', 0, 0xffff, BAD);
  integer(c.classCode, 'description.config.classCode', 0, 0xff_ffff, BAD);
  integer(c.headerType, 'description.config.headerType', 0, 0xff, BAD);
  list(c.capabilities, 'description.config.capabilities', DESCRIPTION_LIMITS.configCapabilities, BAD).forEach((cap, i) => {
    const q = record(cap, `description.config.capabilities[${i}]`, BAD);
    integer(q.id, `description.config.capabilities[${i}].id`, 0, 0xff, BAD);
    integer(q.offset, `description.config.capabilities[${i}].offset`, 0, 0xfff, BAD);
  });
}

function checkBars(bars: readonly unknown[]): void {
  const byIndex = new Map<number, Record<string, unknown>>();
  bars.forEach((value, i) => {
    const at = `description.bars[${i}]`;
    const bar = record(value, at, BAD);
    const index = integer(bar.index, `${at}.index`, 0, 5, BAD);
    if (byIndex.has(index)) failWith('DUPLICATE_INDEX')(`${at}: BAR${index} appears twice`, index);
    byIndex.set(index, bar);
    oneOf(bar.kind, ['memory', 'io', 'upper-half', 'unused'] as const, `${at}.kind`, BAD);
    boolean(bar.is64Bit, `${at}.is64Bit`, BAD);
    boolean(bar.prefetchable, `${at}.prefetchable`, BAD);
    u64(bar.address, `${at}.address`, BAD);
  });
  const inconsistent = failWith('BAR_REGISTERS_INCONSISTENT');
  for (const [index, bar] of byIndex) {
    const lower = byIndex.get(index - 1);
    const upper = byIndex.get(index + 1);
    const is64BitMemory = (b: Record<string, unknown> | undefined): boolean => b?.kind === 'memory' && b.is64Bit === true;
    if (bar.kind === 'upper-half' && !is64BitMemory(lower)) {
      inconsistent(`BAR${index} is an upper half, but BAR${index - 1} is not a 64-bit memory BAR`, index);
    }
    if (is64BitMemory(bar) && index === 5) inconsistent('BAR5 cannot be 64-bit: there is no BAR6 for its upper half', index);
    if (is64BitMemory(bar) && upper !== undefined && upper.kind !== 'upper-half') {
      inconsistent(`BAR${index} is 64-bit, but BAR${index + 1} is not its upper half`, index);
    }
  }
}

/** BAR regions the planner will plan: a 32-bit BAR (or one without a register) must stay below 4 GiB. */
function checkBarSizes(d: DeviceDescription): void {
  for (const region of d.regions) {
    if (region.index > 5) continue;
    const register = d.bars.find((b) => b.index === region.index);
    if (register?.kind === 'io' || register?.kind === 'upper-half' || register?.is64Bit === true) continue;
    if (region.size > MAX_32BIT_BAR_SIZE) {
      const message = `BAR${region.index} is a 32-bit BAR of ${hex(region.size)} bytes: a 32-bit BAR is at most 2 GiB`;
      failWith('BAR_TOO_LARGE')(message, region.index);
    }
  }
}

type MsixPart = { bir: number; offset: bigint; size: bigint };

function checkMsix(d: DeviceDescription): void {
  const m = record(d.msix, 'description.msix', BAD);
  integer(m.capOffset, 'description.msix.capOffset', 0, 0xfff, BAD);
  if (typeof m.vectors !== 'number' || !Number.isSafeInteger(m.vectors) || m.vectors < 1 || m.vectors > MAX_MSIX_VECTORS) {
    failWith('MSIX_BAD_VECTORS')(`description.msix.vectors must be an integer in [1, ${MAX_MSIX_VECTORS}], got ${String(m.vectors)}`);
  }
  const vectors = m.vectors as number;
  const table = msixPart(m.table, 'table', BigInt(vectors) * 16n);
  const pba = msixPart(m.pba, 'PBA', BigInt(Math.ceil(vectors / 64)) * 8n);
  checkMsixHome(d, table, 'table');
  checkMsixHome(d, pba, 'PBA');
  if (table.bir === pba.bir && table.offset < pba.offset + pba.size && pba.offset < table.offset + table.size) {
    const both = `MSI-X table ${hex(table.offset)}+${hex(table.size)} and PBA ${hex(pba.offset)}+${hex(pba.size)}`;
    const message = `${both} overlap in BAR${table.bir}`;
    failWith('MSIX_OVERLAP')(message, table.bir);
  }
}

function msixPart(value: unknown, what: 'table' | 'PBA', expectedSize: bigint): MsixPart {
  const at = `description.msix.${what === 'table' ? 'table' : 'pba'}`;
  const part = record(value, at, BAD);
  if (typeof part.bir !== 'number' || !Number.isSafeInteger(part.bir) || part.bir < 0) BAD(`${at}.bir must be a non-negative integer`);
  const bir = part.bir as number;
  if (bir > 5) failWith('MSIX_BAD_BIR')(`MSI-X ${what} BIR ${bir} is not a BAR (0-5; 6 and 7 are reserved)`);
  const offset = u64(part.offset, `${at}.offset`, BAD);
  const size = u64(part.size, `${at}.size`, BAD);
  if (size === 0n) failWith('MSIX_EMPTY')(`MSI-X ${what} in BAR${bir} has size 0`, bir);
  if (size !== expectedSize) {
    failWith('MSIX_SIZE_MISMATCH')(`MSI-X ${what} is ${hex(size)} bytes, but its vector count makes it ${hex(expectedSize)}`, bir);
  }
  if (offset % 8n !== 0n) failWith('MSIX_MISALIGNED')(`MSI-X ${what} offset ${hex(offset)} is not 8-byte aligned`, bir);
  return { bir, offset, size };
}

/** The structure must sit inside an existing memory BAR's region. */
function checkMsixHome(d: DeviceDescription, part: MsixPart, what: string): void {
  const { bir } = part;
  const register = d.bars.find((b) => b.index === bir);
  if (register?.kind === 'io') {
    failWith('MSIX_IN_IO_BAR')(`MSI-X ${what} is in BAR${bir}, an I/O port BAR (MSI-X must be in memory space)`, bir);
  }
  const region = d.regions.find((r) => r.index === bir);
  const missing = register?.kind === 'upper-half' ? 'the upper half of a 64-bit BAR'
    : !region ? 'a BAR without a VFIO region'
    : region.size === 0n ? 'a BAR of size 0'
    : undefined;
  if (missing || !region) return failWith('MSIX_BAR_MISSING')(`MSI-X ${what} is in BAR${bir}, ${missing ?? 'missing'}`, bir);
  if (part.offset + part.size > region.size) {
    const message = `MSI-X ${what} ${hex(part.offset)}+${hex(part.size)} runs past the end of BAR${bir} (${hex(region.size)} bytes)`;
    failWith('MSIX_OUTSIDE_BAR')(message, bir);
  }
}

