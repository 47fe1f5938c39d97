/**
 * `DirectResource`: the host side of one direct mapping — an mmap kept for the BAR's whole life, and,
 * while the mapping is attached to the guest, a KVM slot and (optionally) a DMA map at its GPA. Every
 * operation that changes the guest returns its own undo, so the mapper composes map, move and decode
 * changes from three verbs without re-implementing slot and DMA bookkeeping.
 */
import { PROT, type HostMapping, type MmapOptions, type Syscalls } from '../sys/syscalls.js';
import type { KvmVm } from '../kvm/vm.js';
import type { DmaMapper } from '../vfio/device-handle.js';
import type { DirectMapping, PlannedBar } from '../plan/types.js';
import { UndoStack } from '../util/undo-stack.js';
import { ErrorCollector } from '../util/error-collector.js';
import type { MapStep } from './errors.js';
import { hugePfnPlacement, type HugePfnPlacement } from './huge-pfn.js';

/** Undoes exactly one completed operation. */
export type Undo = () => void;

/** What every resource of one mapper shares. */
export interface ResourceContext {
  readonly vm: KvmVm;
  readonly deviceFd: number;
  readonly syscalls: HostSyscalls;
  /** The DMA mapper to program, or undefined when DMA mapping is off, unavailable or unsupported for MMIO. */
  readonly dma: DmaMapper | undefined;
  readonly hugePfnAlign: boolean;
  readonly pageSize: bigint;
  /** True once the device is closed: its IOMMU dropped every DMA map. */
  readonly deviceClosed: () => boolean;
}

type HostSyscalls = Pick<Syscalls, 'mmap' | 'munmap'>;

/** mmap options without huge-PFN placement (shared, never changed: one object for every mapping). */
const SHARED: MmapOptions = Object.freeze({ shared: true });

/** A step of one resource failed; what the step itself had acquired is already released. Internal: the mapper wraps it. */
export class StepFailure extends Error {
  constructor(readonly step: MapStep, override readonly cause: unknown, readonly rollbackErrors: unknown[]) {
    super(`${step} failed`, { cause });
  }
}

/** One direct mapping's mmap, slot and DMA map. Created by {@link DirectResource.mmap}. */
export class DirectResource {
  readonly host: HostMapping;
  /**
   * The huge-PFN placement the mmap used, or undefined (alignment off, or no whole block in the mapping).
   * Fixed for the resource's life: its file range never changes, so moves reuse it instead of recomputing.
   */
  readonly hugePfn: HugePfnPlacement | undefined;
  readonly #ctx: ResourceContext;
  /** Where the slot and DMA map are (or were last) placed. */
  #placed: DirectMapping;
  #slot: number | undefined;
  #iova: bigint | undefined;
  #released = false;

  private constructor(ctx: ResourceContext, host: HostMapping, placed: DirectMapping, hugePfn: HugePfnPlacement | undefined) {
    this.#ctx = ctx;
    this.host = host;
    this.hugePfn = hugePfn;
    this.#placed = placed;
  }

  /** mmaps the mapping's bytes of the BAR's region (detached: no slot, no DMA map yet). */
  static mmap(ctx: ResourceContext, bar: PlannedBar, mapping: DirectMapping): DirectResource {
    const prot = mapping.prot === 'read' ? PROT.READ : PROT.READ | PROT.WRITE;
    const fileOffset = bar.regionOffset + mapping.fileOffset;
    const placement = ctx.hugePfnAlign ? hugePfnPlacement(mapping.size, fileOffset, ctx.pageSize) : undefined;
    const options = placement ? { shared: true, align: placement.align, alignOffset: placement.alignOffset } : SHARED;
    let host: HostMapping;
    try {
      host = ctx.syscalls.mmap(ctx.deviceFd, fileOffset, mapping.size, prot, options);
    } catch (error) {
      throw new StepFailure('mmap', error, []);
    }
    return new DirectResource(ctx, host, mapping, placement);
  }

  /** The mapping the slot and DMA map follow (its `gpa` included). */
  get placed(): DirectMapping {
    return this.#placed;
  }

  get slot(): number | undefined {
    return this.#slot;
  }

  get iova(): bigint | undefined {
    return this.#iova;
  }

  get attached(): boolean {
    return this.#slot !== undefined;
  }

  get released(): boolean {
    return this.#released;
  }

  /** Registers a KVM slot (then a DMA map) at `target.gpa`. Returns the undo that detaches again. */
  attach(target: DirectMapping): Undo {
    const previous = this.#placed;
    const undo = new UndoStack();
    this.#placed = target;
    undo.push(() => { this.#placed = previous; });
    this.#run('kvm-slot', undo, () => this.#addSlot(target));
    undo.push(() => this.#removeSlot());
    if (this.#ctx.dma) {
      this.#run('dma-map', undo, () => this.#mapDma(target.gpa!));
      undo.push(() => this.#unmapDma());
    }
    return () => this.#runAll(undo);
  }

  /** Registers the KVM slot that maps this resource's host memory at `at.gpa`. */
  #addSlot(at: DirectMapping): void {
    this.#slot = this.#ctx.vm.addSlot({
      guestPhysAddr: at.gpa!,
      memorySize: at.size,
      userspaceAddr: this.host.address,
      readonly: at.prot === 'read',
    });
  }

  /** Removes the DMA map, then the slot; the mmap stays. Returns the undo that attaches again where it was. */
  detach(): Undo {
    const placed = this.#placed;
    const undo = new UndoStack();
    if (this.#iova !== undefined) {
      const iova = this.#iova;
      this.#run('dma-map', undo, () => this.#unmapDma());
      undo.push(() => this.#mapDma(iova));
    }
    if (this.#slot !== undefined) {
      this.#run('kvm-slot', undo, () => this.#removeSlot());
      undo.push(() => this.#addSlot(placed));
    }
    return () => this.#runAll(undo);
  }

  /** Moves an attached slot (KVM MOVE, same id) and its DMA map to `target.gpa`. Returns the undo. */
  move(target: DirectMapping): Undo {
    const previous = this.#placed;
    const undo = new UndoStack();
    this.#run('kvm-slot', undo, () => this.#ctx.vm.moveSlot(this.#slot!, target.gpa!));
    undo.push(() => this.#ctx.vm.moveSlot(this.#slot!, previous.gpa!));
    this.#placed = target;
    undo.push(() => { this.#placed = previous; });
    if (this.#iova !== undefined) {
      this.#run('dma-map', undo, () => this.#unmapDma());
      undo.push(() => this.#mapDma(previous.gpa!));
      this.#run('dma-map', undo, () => this.#mapDma(target.gpa!));
      undo.push(() => this.#unmapDma());
    }
    return () => this.#runAll(undo);
  }

  /** Records a new placement without touching the kernel (the resource is detached). */
  place(target: DirectMapping): Undo {
    const previous = this.#placed;
    this.#placed = target;
    return () => { this.#placed = previous; };
  }

  /**
   * Releases what is left, DMA map → slot → mmap, continuing past failures. Returns the errors; whatever
   * failed stays recorded so a later call retries exactly that. A closed VM took its slots with it.
   */
  release(): unknown[] {
    const steps = new ErrorCollector();
    steps.attempt(() => this.#unmapDma());
    steps.attempt(() => this.#removeSlot());
    if (this.#iova === undefined && this.#slot === undefined) steps.attempt(() => this.#munmap());
    return steps.errors;
  }

  #mapDma(iova: bigint): void {
    this.#ctx.dma!.mapDma(iova, this.host.address, this.#placed.size, this.#placed.prot);
    this.#iova = iova;
  }

  #unmapDma(): void {
    if (this.#iova === undefined) return;
    // A closed device's container/IOAS is gone with its maps; its fd number may belong to someone else now.
    if (!this.#ctx.deviceClosed()) this.#ctx.dma!.unmapDma(this.#iova, this.#placed.size);
    this.#iova = undefined;
  }

  #removeSlot(): void {
    if (this.#slot === undefined) return;
    // A closed VM already dropped every slot (the kernel did, or KvmVm.close gave them back).
    if (!this.#ctx.vm.closed) this.#ctx.vm.removeSlot(this.#slot);
    this.#slot = undefined;
  }

  #munmap(): void {
    if (this.#released) return;
    this.#ctx.syscalls.munmap(this.host);
    this.#released = true;
  }

  /** Runs one kernel step; on failure unwinds this operation's earlier steps and throws a StepFailure. */
  #run(step: MapStep, undo: UndoStack, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      throw new StepFailure(step, error, undo.unwind());
    }
  }

  /** An operation's undo: every step, newest first; the first failure is rethrown after all ran. */
  #runAll(undo: UndoStack): void {
    const errors = undo.unwind();
    if (errors.length > 0) throw errors[0];
  }
}
