/**
 * `vfio-bars map --verify`: a vCPU reads one word of every direct mapping (its first compared word: on real
 * hardware a read can have side effects, e.g. read-to-clear status registers, so nothing else is read) and it
 * is compared with what pread of the device returns at the same device offset. The device's MSI-X table and PBA are left out: vfio-pci
 * answers pread there with all-ones (the table belongs to its MSI-X emulation) while a mapping shows the
 * real bytes, and PBA bits change on their own. Bytes past the end of a sub-page region (the rest of an
 * expanded page) have no pread counterpart and are left out too.
 */
import type { DeviceDescription, DirectMapping, MappingPlan, PlannedBar, ProbeResult, VfioDeviceHandle } from '../index.js';

/** One compared word. `guest` is what the vCPU read, or 'mmio' when the access left the guest (no slot). */
export interface VerifyCheck {
  readonly bar: number;
  /** Offset in the device region (what pread used). */
  readonly deviceOffset: bigint;
  readonly gpa: bigint;
  readonly guest: bigint | 'mmio';
  readonly device: bigint;
  readonly ok: boolean;
}

/** A device range inside a direct mapping that was deliberately not compared, and why. */
export interface NotCompared {
  readonly bar: number;
  readonly deviceOffset: bigint;
  readonly size: bigint;
  readonly what: 'msix-table' | 'msix-pba';
  readonly reason: string;
}

export interface VerifyReport {
  readonly checks: readonly VerifyCheck[];
  readonly notCompared: readonly NotCompared[];
  readonly ok: boolean;
}

/** What verification needs of the probe vCPU (GuestMemoryProbe has it). */
export interface WordReader {
  read(gpa: bigint, width: 4): ProbeResult;
}

interface Span {
  readonly start: bigint;
  readonly end: bigint;
}

const WORD = 4n;
const PREAD_ALL_ONES = "vfio-pci's pread returns all-ones over the MSI-X table, the mapping shows the real table";
const PBA_LIVE = 'pending bits change on their own';

/** The device's MSI-X table and PBA ranges in BAR `index`. */
function msixRanges(description: DeviceDescription, index: number): NotCompared[] {
  const msix = description.msix;
  if (!msix) return [];
  const ranges: NotCompared[] = [];
  if (msix.table.bir === index) {
    ranges.push({ bar: index, deviceOffset: msix.table.offset, size: msix.table.size, what: 'msix-table', reason: PREAD_ALL_ONES });
  }
  if (msix.pba.bir === index) {
    ranges.push({ bar: index, deviceOffset: msix.pba.offset, size: msix.pba.size, what: 'msix-pba', reason: PBA_LIVE });
  }
  return ranges;
}

/** `span` minus the `holes`, in order. */
function subtract(span: Span, holes: readonly Span[]): Span[] {
  let pieces = [span];
  for (const hole of holes) {
    pieces = pieces.flatMap((p) => [
      { start: p.start, end: hole.start < p.end ? hole.start : p.end },
      { start: hole.end > p.start ? hole.end : p.start, end: p.end },
    ]).filter((p) => p.end > p.start);
  }
  return pieces;
}

/** The first whole, aligned word of the first piece that has one: the one word read of this mapping. */
function firstWord(pieces: readonly Span[]): bigint | undefined {
  for (const piece of pieces) {
    const first = (piece.start + WORD - 1n) / WORD * WORD;
    if (first + WORD <= piece.end) return first;
  }
  return undefined;
}

function readDevice(device: VfioDeviceHandle, bar: PlannedBar, deviceOffset: bigint): bigint {
  const buffer = Buffer.alloc(4);
  device.syscalls.pread(device.fd, buffer, bar.regionOffset + deviceOffset);
  return BigInt(buffer.readUInt32LE(0));
}

function checkMapping(
  probe: WordReader, device: VfioDeviceHandle, bar: PlannedBar, mapping: DirectMapping, holes: readonly NotCompared[],
): VerifyCheck[] {
  if (mapping.gpa === undefined) return [];
  const end = mapping.fileOffset + mapping.size < bar.regionSize ? mapping.fileOffset + mapping.size : bar.regionSize;
  const spans = holes.map((h) => ({ start: h.deviceOffset, end: h.deviceOffset + h.size }));
  const deviceOffset = firstWord(subtract({ start: mapping.fileOffset, end }, spans));
  if (deviceOffset === undefined) return [];
  const gpa = mapping.gpa + (deviceOffset - mapping.fileOffset);
  const read = probe.read(gpa, 4);
  const guest = read.kind === 'value' ? read.value : 'mmio';
  const value = readDevice(device, bar, deviceOffset);
  return [{ bar: bar.index, deviceOffset, gpa, guest, device: value, ok: guest === value }];
}

/** Whether a hole overlaps any direct mapping of `bar` (only those are worth reporting as not compared). */
function overlapsMapping(bar: PlannedBar, hole: NotCompared): boolean {
  return bar.mappings.some((m) => hole.deviceOffset < m.fileOffset + m.size && m.fileOffset < hole.deviceOffset + hole.size);
}

/**
 * Compares every direct mapping of a mapped `plan` with the device, one word each: the first word that is
 * neither in the MSI-X table or PBA (listed in `notCompared`) nor past the end of the region.
 */
export function verifyMappings(
  probe: WordReader, device: VfioDeviceHandle, description: DeviceDescription, plan: MappingPlan,
): VerifyReport {
  const checks: VerifyCheck[] = [];
  const notCompared: NotCompared[] = [];
  for (const bar of plan.bars) {
    const holes = msixRanges(description, bar.index);
    notCompared.push(...holes.filter((h) => overlapsMapping(bar, h)));
    for (const mapping of bar.mappings) checks.push(...checkMapping(probe, device, bar, mapping, holes));
  }
  return { checks, notCompared, ok: checks.every((c) => c.ok) };
}
