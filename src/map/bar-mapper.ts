/**
 * `BarMapper`: executes a MappingPlan with real syscalls, in a fixed order per direct mapping —
 * mmap → KVM slot → DMA map — recording each resource it acquires and undoing exactly those, newest
 * first, on any failure. `move` re-registers a BAR at a new GPA without re-mmapping.
 */
import { hex } from '../errors.js';
import { PROT, type HostMapping } from '../sys/syscalls.js';
import type { KvmVm } from '../kvm/vm.js';
import type { VfioDeviceHandle } from '../vfio/device-handle.js';
import { UndoStack } from '../vfio/cleanup.js';
import type { DirectMapping, MappingPlan, PlannedBar } from '../plan/types.js';
import { replan } from '../plan/planner.js';
import { MapError, type MapStep } from './errors.js';
import { mapperLog, type MapperLogger } from './logger.js';

export interface BarMapperOptions {
  /** DMA-map each direct mapping at its GPA (for guests without a vIOMMU, so the device reaches peer BARs). */
  dmaMap?: boolean;
  /** Align host addresses of large mappings to min(pow2(size), 1 GiB) so the kernel can use huge PFN maps. Default true. */
  hugePfnAlign?: boolean;
  logger?: MapperLogger;
}

/** One direct mapping as it lives in the host and the VM (updated in place by `move`). */
export interface MappedRegion {
  /** The planned mapping currently applied (its `gpa` follows moves). */
  mapping: DirectMapping;
  readonly host: HostMapping;
  /** KVM slot id, or undefined while the BAR is trapped (unaligned guest address). */
  slot: number | undefined;
  /** IOVA of the DMA mapping, when one exists. */
  iova: bigint | undefined;
  /** True once the host mapping has been unmapped. */
  released?: boolean;
}

/** A mapped BAR, kept by the VMM until `unmap`. */
export interface MappedBar {
  readonly index: number;
  /** The plan for this BAR as currently applied (GPAs included). */
  readonly planned: PlannedBar;
  readonly guestAddress: bigint | undefined;
  /** `direct`: slots registered; `trapped`: mmaps kept, no slots (guest address not mappable). */
  readonly state: 'direct' | 'trapped';
  readonly regions: readonly MappedRegion[];
}

export interface MoveResult {
  readonly state: 'direct' | 'trapped';
  readonly reason: string;
}

interface BarState {
  planned: PlannedBar;
  pageSize: bigint;
  msixStrategy: MappingPlan['msixStrategy'];
  regions: MappedRegion[];
  state: 'direct' | 'trapped';
}

const ONE_GIB = 1n << 30n;

export class BarMapper implements Disposable {
  readonly #device: VfioDeviceHandle;
  readonly #vm: KvmVm;
  readonly #dmaMap: boolean;
  readonly #hugePfnAlign: boolean;
  readonly #log: MapperLogger;
  readonly #bars = new Map<number, BarState>();

  constructor(device: VfioDeviceHandle, vm: KvmVm, options: BarMapperOptions = {}) {
    this.#device = device;
    this.#vm = vm;
    this.#dmaMap = options.dmaMap ?? false;
    this.#hugePfnAlign = options.hugePfnAlign ?? true;
    this.#log = mapperLog(options.logger);
    if (this.#dmaMap && !device.dma) this.#log.info(`${device.bdf}: no IOMMU (${device.iommuMode}): DMA mapping skipped, the device uses host physical addresses`);
  }

  /** The BARs currently mapped, by index. */
  get bars(): ReadonlyMap<number, MappedBar> {
    return new Map([...this.#bars].map(([index, s]) => [index, this.#snapshot(index, s)]));
  }

  /**
   * Maps every direct mapping of `plan`. All or nothing: on failure everything this call acquired is
   * released and one MapError names the step, BAR, GPA and errno.
   */
  map(plan: MappingPlan): MappedBar[] {
    this.#validate(plan);
    const undo = new UndoStack();
    const states = new Map<number, BarState>();
    for (const bar of plan.bars) {
      const regions: MappedRegion[] = [];
      for (const mapping of bar.mappings) regions.push(this.#mapOne(bar, mapping, undo));
      const state: BarState = { planned: bar, pageSize: plan.pageSize, msixStrategy: plan.msixStrategy, regions, state: bar.mappings.length > 0 || !bar.suspended ? 'direct' : 'trapped' };
      states.set(bar.index, state);
      this.#logBar(bar);
    }
    undo.release();
    for (const [index, state] of states) this.#bars.set(index, state);
    return [...states].map(([index, s]) => this.#snapshot(index, s));
  }

  /**
   * The guest reprogrammed BAR `index` to `guestAddress`. Slots (and DMA maps) follow without re-mmapping.
   * An address that cannot be mapped directly downgrades the BAR to trapped (not an error); moving it back
   * to a mappable address maps it again. Any failure restores the previous placement.
   */
  move(index: number, guestAddress: bigint): MoveResult {
    const bar = this.#bars.get(index);
    if (!bar) throw new MapError(`BAR${index} is not mapped`, { step: 'move', code: 'NOT_MAPPED', bar: index });
    const next = replan({ pageSize: bar.pageSize, msixStrategy: bar.msixStrategy, bars: [bar.planned], warnings: [], skipped: [] }, index, guestAddress).bars[0]!;
    const undo = new UndoStack();
    try {
      const result = next.mappings.length > 0 ? this.#moveDirect(bar, next, undo) : this.#downgrade(bar, next, undo);
      undo.release();
      bar.planned = next;
      return result;
    } catch (error) {
      throw MapError.fromStep(error, 'move', index, guestAddress, undo.unwind());
    }
  }

  /**
   * Releases BAR `index`: DMA maps, slots, mmaps (views detached). Keeps going past errors; whatever
   * could not be released stays recorded, so calling `unmap` again retries exactly that.
   */
  unmap(index: number): void {
    const bar = this.#bars.get(index);
    if (!bar) return;
    const errors: unknown[] = [];
    const attempt = (release: () => void): void => {
      try {
        release();
      } catch (error) {
        errors.push(error);
      }
    };
    for (const region of [...bar.regions].reverse()) {
      attempt(() => this.#dmaUnmap(region));
      attempt(() => this.#removeSlot(region));
      if (region.iova === undefined && region.slot === undefined) attempt(() => this.#munmap(region));
    }
    bar.regions = bar.regions.filter((r) => !r.released);
    if (errors.length > 0) throw MapError.fromStep(errors[0], 'unmap', index, bar.planned.guestAddress, errors.slice(1));
    this.#bars.delete(index);
    this.#log.info(`BAR${index}: unmapped`);
  }

  unmapAll(): void {
    const errors: unknown[] = [];
    for (const index of [...this.#bars.keys()].reverse()) {
      try {
        this.unmap(index);
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  [Symbol.dispose](): void {
    this.unmapAll();
  }

  // ---- map --------------------------------------------------------------------------------------

  #validate(plan: MappingPlan): void {
    for (const bar of plan.bars) {
      if (this.#bars.has(bar.index)) throw new MapError(`BAR${bar.index} is already mapped`, { step: 'validate', code: 'ALREADY_MAPPED', bar: bar.index });
      for (const m of bar.mappings) {
        if (m.gpa === undefined) {
          throw new MapError(`BAR${bar.index}: mapping at ${hex(m.barOffset)} has no guest address; plan with barAddresses`, { step: 'validate', code: 'NO_GUEST_ADDRESS', bar: bar.index });
        }
      }
    }
  }

  #mapOne(bar: PlannedBar, mapping: DirectMapping, undo: UndoStack): MappedRegion {
    const gpa = mapping.gpa!;
    const region: MappedRegion = { mapping, host: this.#step('mmap', bar.index, gpa, undo, () => this.#mmap(bar, mapping)), slot: undefined, iova: undefined };
    undo.push(() => this.#munmap(region));
    region.slot = this.#step('kvm-slot', bar.index, gpa, undo, () => this.#addSlot(region.host, mapping, gpa));
    undo.push(() => this.#removeSlot(region));
    if (this.#dmaMap && this.#device.dma) {
      this.#step('dma-map', bar.index, gpa, undo, () => this.#device.dma!.mapDma(gpa, region.host.address, mapping.size, mapping.prot));
      region.iova = gpa;
      undo.push(() => this.#dmaUnmap(region));
    }
    return region;
  }

  /** Runs one step; on failure unwinds everything acquired so far and throws the MapError for it. */
  #step<T>(step: MapStep, bar: number, gpa: bigint, undo: UndoStack, fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw MapError.fromStep(error, step, bar, gpa, undo.unwind());
    }
  }

  #mmap(bar: PlannedBar, mapping: DirectMapping): HostMapping {
    const prot = mapping.prot === 'read' ? PROT.READ : PROT.READ | PROT.WRITE;
    const align = this.#hugePfnAlign ? hugePfnAlignment(mapping.size) : 0n;
    return this.#device.syscalls.mmap(this.#device.fd, bar.regionOffset + mapping.fileOffset, mapping.size, prot, { shared: true, ...(align > 0n && { align }) });
  }

  #addSlot(host: HostMapping, mapping: DirectMapping, gpa: bigint): number {
    return this.#vm.addSlot({ guestPhysAddr: gpa, memorySize: mapping.size, userspaceAddr: host.address, readonly: mapping.prot === 'read' });
  }

  #removeSlot(region: MappedRegion): void {
    if (region.slot === undefined) return;
    this.#vm.removeSlot(region.slot);
    region.slot = undefined;
  }

  #munmap(region: MappedRegion): void {
    if (region.released) return;
    this.#device.syscalls.munmap(region.host);
    region.released = true;
  }

  #dmaUnmap(region: MappedRegion): void {
    if (region.iova === undefined) return;
    this.#device.dma!.unmapDma(region.iova, region.mapping.size);
    region.iova = undefined;
  }

  // ---- move -------------------------------------------------------------------------------------

  #moveDirect(bar: BarState, next: PlannedBar, undo: UndoStack): MoveResult {
    const targets = next.mappings;
    if (bar.state === 'trapped') {
      if (bar.regions.length === 0) this.#mapFresh(bar, next, undo);
      else bar.regions.forEach((region, i) => this.#reattach(region, targets[i]!, undo));
      bar.state = 'direct';
      undo.push(() => { bar.state = 'trapped'; });
      const reason = `BAR${bar.planned.index}: mapped again at ${hex(next.guestAddress!)}`;
      this.#log.info(reason);
      return { state: 'direct', reason };
    }
    // Move in the direction of travel so no slot lands on a sibling that has not moved yet (EEXIST).
    const movingUp = (next.guestAddress ?? 0n) > (bar.planned.guestAddress ?? 0n);
    const order = bar.regions.map((_, i) => i);
    if (movingUp) order.reverse();
    for (const i of order) this.#moveRegion(bar.regions[i]!, targets[i]!, undo);
    bar.regions.forEach((region, i) => { region.mapping = targets[i]!; });
    const reason = `BAR${bar.planned.index}: moved ${hex(bar.planned.guestAddress ?? 0n)} -> ${hex(next.guestAddress!)}`;
    this.#log.info(reason);
    return { state: 'direct', reason };
  }

  #moveRegion(region: MappedRegion, target: DirectMapping, undo: UndoStack): void {
    const oldGpa = region.mapping.gpa!;
    const newGpa = target.gpa!;
    this.#vm.moveSlot(region.slot!, newGpa);
    undo.push(() => this.#vm.moveSlot(region.slot!, oldGpa));
    if (region.iova !== undefined) {
      const size = region.mapping.size;
      this.#device.dma!.unmapDma(oldGpa, size);
      region.iova = undefined;
      undo.push(() => { this.#device.dma!.mapDma(oldGpa, region.host.address, size, region.mapping.prot); region.iova = oldGpa; });
      this.#device.dma!.mapDma(newGpa, region.host.address, size, region.mapping.prot);
      region.iova = newGpa;
      undo.push(() => { this.#device.dma!.unmapDma(newGpa, size); region.iova = undefined; });
    }
  }

  /** A BAR planned at an unaligned address was never mmapped: map it now, as `map` would have. */
  #mapFresh(bar: BarState, next: PlannedBar, undo: UndoStack): void {
    for (const target of next.mappings) {
      bar.regions.push(this.#mapOne(next, target, undo));
      undo.push(() => { bar.regions.pop(); });
    }
  }

  /** Registers a kept mmap again (slot, DMA) at the target's GPA. */
  #reattach(region: MappedRegion, target: DirectMapping, undo: UndoStack): void {
    const previous = region.mapping;
    region.mapping = target;
    undo.push(() => { region.mapping = previous; });
    region.slot = this.#addSlot(region.host, target, target.gpa!);
    undo.push(() => this.#removeSlot(region));
    if (this.#dmaMap && this.#device.dma) {
      this.#device.dma.mapDma(target.gpa!, region.host.address, target.size, target.prot);
      region.iova = target.gpa!;
      undo.push(() => this.#dmaUnmap(region));
    }
  }

  /** The new address cannot be mapped directly: drop slots and DMA maps, keep the mmaps for later. */
  #downgrade(bar: BarState, next: PlannedBar, undo: UndoStack): MoveResult {
    if (bar.state === 'direct') {
      for (const region of bar.regions) {
        const { mapping } = region;
        if (region.iova !== undefined) {
          const iova = region.iova;
          this.#dmaUnmap(region);
          undo.push(() => { this.#device.dma!.mapDma(iova, region.host.address, mapping.size, mapping.prot); region.iova = iova; });
        }
        if (region.slot !== undefined) {
          this.#removeSlot(region);
          undo.push(() => { region.slot = this.#addSlot(region.host, mapping, mapping.gpa!); });
        }
      }
      bar.state = 'trapped';
      undo.push(() => { bar.state = 'direct'; });
    }
    const reason = next.reasons.at(-1)?.message ?? `BAR${next.index}: trapped`;
    this.#log.warn(`BAR${next.index}: moved to ${hex(next.guestAddress!)}, now trapped: ${reason}`);
    return { state: 'trapped', reason };
  }

  #logBar(bar: PlannedBar): void {
    for (const m of bar.mappings) this.#log.info(`BAR${bar.index}: mapped ${hex(m.barOffset)}+${hex(m.size)} at gpa ${hex(m.gpa!)}: ${m.reason}`);
    if (bar.msix?.relocated) this.#log.info(`BAR${bar.index}: ${bar.msix.reason}`);
    for (const t of bar.trapped) this.#log.debug(`BAR${bar.index}: trapped ${hex(t.barOffset)}+${hex(t.size)}: ${t.reason}`);
  }

  #snapshot(index: number, s: BarState): MappedBar {
    return { index, planned: s.planned, guestAddress: s.planned.guestAddress, state: s.state, regions: s.regions };
  }
}

/** min(largest power of two ≤ size, 1 GiB): the block size huge PFN mappings can use. */
export function hugePfnAlignment(size: bigint): bigint {
  let block = 1n;
  while (block * 2n <= size && block < ONE_GIB) block *= 2n;
  return block;
}
