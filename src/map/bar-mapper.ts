/* BarMapper executes a MappingPlan with real syscalls (documented on the class). */
import { hex } from '../errors.js';
import type { HostMapping } from '../sys/syscalls.js';
import type { KvmVm } from '../kvm/vm.js';
import type { DmaMapper, VfioDeviceHandle } from '../vfio/device-handle.js';
import { UndoStack } from '../util/undo-stack.js';
import type { DirectMapping, MappingPlan, PlannedBar, PlanWarning } from '../plan/types.js';
import { MapError, type MapStep } from './errors.js';
import { mapperLog, type MapperLog, type MapperLogger } from './logger.js';
import { DirectResource, StepFailure, type ResourceContext } from './direct-resource.js';
import { checkBarIndex, checkConstructorArguments, checkGuestAddress, checkPlan } from './arguments.js';
import { deepFreeze } from '../util/deep-freeze.js';
import { replanBar } from '../plan/planner.js';
import { overlapsBar, rangesOverlap, refusedRange, sameParking, type BarParking } from './parking.js';

/** Options of the {@link BarMapper} constructor. */
export interface BarMapperOptions {
  /** DMA-map each direct mapping at its GPA (for guests without a vIOMMU, so the device reaches peer BARs). */
  dmaMap?: boolean;
  /**
   * Place host addresses of large mappings so the kernel can use huge PFN maps: `address ≡ file offset`
   * modulo the block (see `hugePfnPlacement`). Default true.
   */
  hugePfnAlign?: boolean;
  /** Receives every decision that changes the guest (also written to `NODE_DEBUG=vfio-bars`). A logger that throws is ignored. */
  logger?: MapperLogger;
}

/** One direct mapping as it lives in the host and the VM: a frozen snapshot (see {@link BarMapper.bars}). */
export interface MappedRegion {
  /** The planned mapping currently applied (its `gpa` follows moves). */
  readonly mapping: DirectMapping;
  /** A copy of the host mapping (same address, length and view); the mapper keeps the original. */
  readonly host: HostMapping;
  /** KVM slot id, or undefined while the BAR is trapped or its decode is off. */
  readonly slot: number | undefined;
  /** IOVA of the DMA mapping, when one exists. */
  readonly iova: bigint | undefined;
  /** True once the host mapping has been unmapped. */
  readonly released?: boolean;
}

/** A mapped BAR, as a frozen snapshot taken when it was asked for. */
export interface MappedBar {
  /** BAR index, 0-5. */
  readonly index: number;
  /** The plan for this BAR as currently applied (GPAs included). */
  readonly planned: PlannedBar;
  /** Where the guest currently has the BAR (undefined only for a plan without addresses). */
  readonly guestAddress: bigint | undefined;
  /**
   * `direct`: placed where slots can be registered; `trapped`: mmaps kept, no slots, every access exits,
   * because the address cannot be mapped (unaligned) or because the BAR is parked (see `parked`).
   */
  readonly state: 'direct' | 'trapped';
  /**
   * Present while the BAR is parked: its range overlaps another decoding BAR or a slot, so it has no slots
   * (state `'trapped'`) until the overlap ends. The code says which (`'OVERLAPS_BAR'`, `'OVERLAPS_SLOT'`...).
   */
  readonly parked?: BarParking;
  /** PCI COMMAND.MEM as last set by {@link BarMapper.setDecode}: false means no slots and no DMA maps. */
  readonly decode: boolean;
  /** One per kept mmap, in the order of the planned (or suspended) mappings. */
  readonly regions: readonly MappedRegion[];
}

/** What {@link BarMapper.move} did with the BAR. */
export interface MoveResult {
  /**
   * `'direct'`: slots registered at the new address; `'trapped'`: no slots, every access exits, because the
   * address cannot be mapped or because the new range overlaps another BAR or slot (then `parked` says so).
   */
  readonly state: 'direct' | 'trapped';
  /** The decision in words, for logs; never parsed. */
  readonly reason: string;
  /** Present when the BAR was parked: the decision as data (see {@link MappedBar.parked}). */
  readonly parked?: BarParking;
}

/** A warning-level decision the mapper made (today: placements a move could not map directly). */
export interface MapperWarning {
  /** BAR index the warning is about. */
  readonly bar: number;
  /**
   * For programs: the plan's warning code (a {@link PlanWarningCode}, e.g. `'suspended'`), a {@link ParkCode}
   * (`'OVERLAPS_BAR'`...) when a BAR was parked, `'RETRY_FAILED'` when giving a parked BAR its slots back failed
   * for another reason than an overlap, or `'HUGE_PFN_GPA_MISMATCH'`.
   */
  readonly code: string;
  /** The warning in words, for people. */
  readonly message: string;
}

interface BarState {
  planned: PlannedBar;
  readonly pageSize: bigint;
  /** One per kept mmap, in the order of the planned mappings (or the suspended ones). */
  resources: DirectResource[];
  decode: boolean;
  /** Set while decode is on and the BAR's range is taken: no slots, everything trapped. */
  parked: BarParking | undefined;
  /** When it was parked (a counter): parked BARs get their slots back oldest first. */
  parkedSince: number;
  /** The error code of the last failed retry, so a failure that repeats is logged once. */
  retryFailure: string | undefined;
}

/** At most this many warnings are kept (oldest dropped), so a VMM that moves BARs all day stays flat. */
const MAX_WARNINGS = 256;

/**
 * Maps a device's BARs into a KVM VM and keeps them there across guest BAR moves and decode changes: it
 * executes a {@link MappingPlan} with real syscalls. Each direct mapping is one resource (mmap → KVM slot →
 * DMA map) whose attach, detach and move return their own undo; `map`, `move` and `setDecode` compose
 * those on an undo stack, so any failure puts back exactly what the call changed and throws one
 * {@link MapError} naming the step, BAR, GPA and errno. The mmaps live as long as the BAR is mapped: moves
 * and decode changes only re-register slots. Not thread-safe: use it on one thread (see the README, Threads).
 *
 * @example
 * using mapper = new BarMapper(device, vm, { dmaMap: true });
 * mapper.map(planBarMappings(device.describe(), { pageSize, barAddresses: { 0: 0xc000_0000n } }));
 * mapper.move(0, 0xd000_0000n);      // guest reprogrammed BAR0
 * mapper.setDecode(0, false);        // guest cleared COMMAND.MEM
 */
export class BarMapper implements Disposable {
  readonly #device: VfioDeviceHandle;
  readonly #ctx: Omit<ResourceContext, 'pageSize'>;
  #lastContext: ResourceContext | undefined;
  readonly #log: MapperLog;
  readonly #bars = new Map<number, BarState>();
  readonly #warnings: MapperWarning[] = [];
  /** Resources a failed rollback could not release: retried by unmapAll and dispose, so nothing leaks. */
  readonly #orphans: { bar: number; resource: DirectResource }[] = [];
  #disposed = false;
  /** Counts parkings, so parked BARs are retried in the order they were parked. */
  #parkings = 0;

  /**
   * @param device the open device whose regions are mmapped (and whose IOMMU gets the DMA maps).
   * @param vm the VM the slots go into.
   * @param options DMA mapping, huge-PFN placement, logger.
   * @throws MapError `BAD_ARGUMENT` when the device, VM or options are not what they claim to be.
   */
  constructor(device: VfioDeviceHandle, vm: KvmVm, options: BarMapperOptions = {}) {
    checkConstructorArguments(device, vm, options);
    this.#device = device;
    this.#log = mapperLog(options.logger);
    this.#ctx = {
      vm, deviceFd: device.fd, syscalls: device.syscalls, dma: this.#dmaTarget(options.dmaMap ?? false),
      hugePfnAlign: options.hugePfnAlign ?? true, deviceClosed: () => device.closed === true,
    };
  }

  /** The BARs currently mapped, by index: frozen copies, so writing to them cannot change the mapper. */
  get bars(): ReadonlyMap<number, MappedBar> {
    return new Map([...this.#bars].map(([index, s]) => [index, snapshot(index, s)]));
  }

  /** Warnings from moves (placements that cannot be mapped directly), oldest first; at most 256 kept. */
  get warnings(): readonly MapperWarning[] {
    return [...this.#warnings];
  }

  /**
   * The current plan of BAR `index` (after moves), or undefined when it is not mapped. O(1), no copy:
   * the object is immutable and replaced, never changed, by `move`.
   *
   * @throws MapError `BAD_ARGUMENT` for an index that is not an integer 0-5; `DISPOSED` after dispose.
   * @example
   * const gpa = mapper.plannedBar(0)?.guestAddress;   // where the guest has BAR0 now
   */
  plannedBar(index: number): PlannedBar | undefined {
    this.#assertUsable('validate');
    checkBarIndex('validate', index);
    return this.#bars.get(index)?.planned;
  }

  /**
   * Maps every direct mapping of `plan`. All or nothing: on failure everything this call acquired is
   * released and one MapError names the step, BAR, GPA and errno. A deeply frozen plan (the planner's) is
   * kept as is and checked once however often it is mapped; any other plan is checked and copied every time.
   *
   * The placement is the VMM's own, so an overlap is its mistake and throws (a guest's overlapping move parks
   * the BAR instead, see {@link BarMapper.move}).
   *
   * @throws MapError `BAD_PLAN`/`DUPLICATE_BAR`/`NO_GUEST_ADDRESS` for a plan it cannot apply,
   *   `ALREADY_MAPPED` for a BAR mapped earlier, `OVERLAPS_BAR` for a BAR over one mapped earlier that decodes,
   *   the errno name of a failed mmap/slot/DMA map (`EEXIST`: another slot is there), `DISPOSED`.
   * @example
   * const plan = planBarMappings(device.describe(), { pageSize, barAddresses: { 0: 0xc000_0000n } });
   * const [bar0] = mapper.map(plan);           // bar0.regions[i].slot, .host (the mmap)
   */
  map(plan: MappingPlan): MappedBar[] {
    this.#assertUsable('validate');
    this.#assertDeviceOpen('validate');
    const keepAsIs = checkPlan(plan);
    for (const bar of plan.bars) {
      if (this.#bars.has(bar.index)) {
        throw new MapError(`BAR${bar.index} is already mapped`, { step: 'validate', code: 'ALREADY_MAPPED', bar: bar.index });
      }
      this.#checkNoHolder(bar);
    }
    const undo = new UndoStack();
    const states = new Map<number, BarState>();
    for (const bar of plan.bars) {
      const planned = keepAsIs ? bar : frozenCopy(bar);
      const state: BarState = {
        planned, pageSize: plan.pageSize, resources: [], decode: true, parked: undefined, parkedSince: 0, retryFailure: undefined,
      };
      for (const mapping of planned.mappings) {
        try {
          this.#attachFresh(state, mapping, undo, undefined);
        } catch (error) {
          throw failure(error, 'validate', bar.index, mapping.gpa, undo);
        }
      }
      states.set(bar.index, state);
    }
    undo.release();
    for (const [index, state] of states) this.#bars.set(index, state);
    for (const state of states.values()) {
      this.#logBar(state.planned);
      this.#checkHugePfnGpa(state);
    }
    return [...states].map(([index, s]) => snapshot(index, s));
  }

  /**
   * The guest reprogrammed BAR `index` to `guestAddress`. Slots (and DMA maps) follow without re-mmapping.
   * An address that cannot be mapped directly downgrades the BAR to trapped (not an error); moving it back
   * to a mappable address maps it again. With decode off only the placement changes. Any failure restores
   * the previous placement.
   *
   * Overlaps are not errors either (PCI leaves them undefined, and a guest writing a BAR one register at a
   * time passes through them): a BAR whose new range overlaps another decoding BAR of this device, or
   * whose slot KVM refuses with EEXIST (another device, RAM), is parked: no slots, every access traps (the
   * guest view forwards it to the device), state `'trapped'` with `parked` holding a {@link BarParking} code
   * and reason, logged once. The BAR that already held the range keeps it: KVM itself keeps the existing
   * slot and refuses the newcomer, and the BAR the guest is rewriting is the one in flux, so the stable one
   * never loses its slots or DMA maps to a transient placement. After every move, decode change and unmap,
   * parked BARs whose range became free get their slots back (oldest parked first);
   * {@link BarMapper.retryParked} does it on demand.
   *
   * @throws MapError `BAD_ARGUMENT`, `NOT_MAPPED`, `DISPOSED`, or step `move` with the failing call's errno
   *   (never `EEXIST`: an overlap parks the BAR).
   * @example
   * const { state, reason, parked } = mapper.move(0, 0xd000_0000n); // 'direct', or 'trapped' with the reason
   * plan = replan(plan, 0, 0xd000_0000n);                            // keep your own copy of the plan in step
   */
  move(index: number, guestAddress: bigint): MoveResult {
    const bar = this.#barFor('move', index);
    checkGuestAddress('move', index, guestAddress);
    const { bar: next, warnings } = this.#replan(bar, guestAddress);
    const undo = new UndoStack();
    let parking: BarParking | undefined;
    try {
      parking = this.#settle(bar, next, bar.decode, undo);
    } catch (error) {
      throw failure(error, 'move', index, guestAddress, undo);
    }
    undo.release();
    const before = bar.planned;
    const wasParked = bar.parked;
    bar.planned = next;
    this.#park(bar, parking);
    this.#checkHugePfnGpa(bar);
    const result = this.#reportMove(before, next, warnings, wasParked, parking);
    this.#retryParked(bar);
    return result;
  }

  /**
   * PCI COMMAND.MEM for BAR `index`: `false` removes its KVM slots and DMA maps and keeps the mmaps; `true`
   * restores them at the current placement (after any moves made meanwhile). Idempotent; all or nothing.
   * Turning decode on over a range that another decoding BAR or slot holds parks the BAR (see `move`); turning
   * it off ends the BAR's parking and lets parked siblings over its range get their slots back.
   *
   * @throws MapError `BAD_ARGUMENT`, `NOT_MAPPED`, `DISPOSED`, or step `decode` with the failing call's errno
   *   (never `EEXIST`: an overlap parks the BAR).
   * @example
   * vmm.onCommandWrite((command) => mapper.setDecode(0, (command & 0x2) !== 0)); // COMMAND.MEM
   */
  setDecode(index: number, enabled: boolean): void {
    const bar = this.#barFor('decode', index);
    if (typeof enabled !== 'boolean') {
      throw new MapError(
        `BAR${index}: decode must be a boolean, got ${typeof enabled}`,
        { step: 'decode', code: 'BAD_ARGUMENT', bar: index },
      );
    }
    if (bar.decode === enabled) return;
    const undo = new UndoStack();
    let parking: BarParking | undefined;
    try {
      parking = this.#settle(bar, bar.planned, enabled, undo);
    } catch (error) {
      throw failure(error, 'decode', index, bar.planned.guestAddress, undo);
    }
    undo.release();
    bar.decode = enabled;
    this.#park(bar, parking);
    const outcome = parking ? 'on: parked, no slots' : enabled ? 'on: slots restored' : 'off: slots removed, mmaps kept';
    this.#log.info(`BAR${index}: memory decode ${outcome}`);
    this.#retryParked(bar);
  }

  /**
   * Why BAR `index` is parked (its range overlaps another BAR or slot, so it has no slots and every access
   * traps), or undefined when it is not parked or not mapped. O(1).
   *
   * @throws MapError `BAD_ARGUMENT` for an index that is not an integer 0-5; `DISPOSED` after dispose.
   * @example
   * const parked = mapper.parking(2);
   * if (parked?.code === 'OVERLAPS_BAR') console.warn(`BAR2 parked under BAR${parked.bar}: ${parked.reason}`);
   */
  parking(index: number): BarParking | undefined {
    this.#assertUsable('validate');
    checkBarIndex('validate', index);
    return this.#bars.get(index)?.parked;
  }

  /**
   * Tries to give every parked BAR (oldest parked first) its slots back, and returns how many got them.
   * The mapper does this itself after each of its moves, decode changes and unmaps; call it when the VMM
   * freed a range the mapper cannot know about (it removed RAM or moved another device's BAR away), then
   * `PassthroughDevice.refresh()`. A retry that fails for another reason than an overlap leaves the BAR
   * parked and logs a `'RETRY_FAILED'` warning (once per error code): it never throws for that.
   *
   * @throws MapError `DISPOSED`, `DEVICE_CLOSED`.
   * @example
   * vm.removeSlot(ramSlot);                 // the VMM's own change
   * if (mapper.retryParked() > 0) guest.refresh();
   */
  retryParked(): number {
    this.#assertUsable('validate');
    this.#assertDeviceOpen('validate');
    return this.#retryParked(undefined);
  }

  /**
   * Releases BAR `index`: DMA maps, slots, mmaps (views detached). Keeps going past errors; whatever
   * could not be released stays recorded, so calling `unmap` again retries exactly that. Slots of a VM
   * closed first are already gone: only the mmaps (and DMA maps) are released then.
   *
   * @throws MapError `BAD_ARGUMENT`, `DISPOSED`, or step `unmap` with the first failure.
   * @example
   * mapper.unmap(2);   // hot-unplug of BAR2's function, or before closing the device
   */
  unmap(index: number): void {
    this.#assertUsable('unmap');
    checkBarIndex('unmap', index);
    const held = this.#bars.has(index);
    this.#unmap(index);
    if (held) this.#retryParked(undefined);
  }

  /**
   * Unmaps every BAR (newest index first); throws the first failure after trying them all.
   *
   * @throws MapError `DISPOSED`, or step `unmap` with the first failure (the rest in `rollbackErrors`).
   */
  unmapAll(): void {
    this.#assertUsable('unmap');
    this.#unmapAll();
  }

  /** Unmaps everything; afterwards every method but this one throws `DISPOSED`. Idempotent. */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#unmapAll();
    this.#disposed = true;
  }

  // ---- shared steps -----------------------------------------------------------------------------

  /**
   * Brings `bar` to `next` with `decode`, parked instead of attached when its range is taken: a decoding,
   * unparked sibling overlaps it, or KVM (or the IOMMU) refuses it with EEXIST. Returns the parking, or
   * undefined when the BAR is not parked. Every change is on `undo`; any other failure throws.
   */
  #settle(bar: BarState, next: PlannedBar, decode: boolean, undo: UndoStack): BarParking | undefined {
    if (!decode) {
      this.#reconcile(bar, next, false, undo);
      return undefined;
    }
    const holder = this.#holderOf(bar.planned.index, next);
    if (holder) {
      this.#reconcile(bar, next, false, undo);
      return overlapsBar(next, holder.planned);
    }
    const attempt = new UndoStack();
    try {
      this.#reconcile(bar, next, true, attempt);
    } catch (error) {
      const parking = refusedRange(error, next);
      const rollback = attempt.unwind();
      if (rollback.length > 0) throw withRollback(error, rollback);
      if (!parking) throw error;
      this.#reconcile(bar, next, false, undo);
      return parking;
    }
    undo.push(() => {
      const errors = attempt.unwind();
      if (errors.length > 0) throw errors[0];
    });
    return undefined;
  }

  /** The sibling that holds (decodes, unparked) a range overlapping `next`, lowest index first. */
  #holderOf(index: number, next: PlannedBar): BarState | undefined {
    const holders = [...this.#bars.values()]
      .filter((s) => s.planned.index !== index && s.decode && !s.parked && rangesOverlap(s.planned, next))
      .sort((a, b) => a.planned.index - b.planned.index);
    return holders[0];
  }

  /** `map`: a BAR over a decoding BAR mapped earlier is the VMM's mistake (parking is for the guest's moves). */
  #checkNoHolder(bar: PlannedBar): void {
    const holder = this.#holderOf(bar.index, bar);
    if (!holder) return;
    throw new MapError(overlapsBar(bar, holder.planned).reason, { step: 'validate', code: 'OVERLAPS_BAR', bar: bar.index });
  }

  /** Records `bar`'s parking after a committed change; a new decision is a warning (logged once), an end is info. */
  #park(bar: BarState, parking: BarParking | undefined): void {
    const before = bar.parked;
    bar.parked = parking ? Object.freeze({ ...parking }) : undefined;
    bar.retryFailure = undefined;
    const index = bar.planned.index;
    if (parking && !before) bar.parkedSince = ++this.#parkings;
    if (parking && !sameParking(before, parking)) this.#warn({ bar: index, code: parking.code, message: parking.reason });
    if (!parking && before) {
      const how = bar.decode ? `slots restored at ${hex(bar.planned.guestAddress ?? 0n)}` : 'decode off';
      this.#log.info(`BAR${index}: no longer parked (${before.code}): ${how}`);
    }
  }

  /**
   * Gives parked BARs (but `except`, just settled) their slots back where their range is free, oldest parked
   * first: each one unparked can only hold a range the later ones then stay off. Returns how many were
   * unparked. A failure other than an overlap keeps the BAR parked and is a warning, never an error: the
   * change that triggered the retry has already succeeded.
   */
  #retryParked(except: BarState | undefined): number {
    if (this.#ctx.vm.closed || this.#device.closed === true) return 0; // nothing can be attached any more
    const parked = [...this.#bars.values()]
      .filter((s) => s !== except && s.parked && s.decode)
      .sort((a, b) => a.parkedSince - b.parkedSince);
    let restored = 0;
    for (const bar of parked) {
      const undo = new UndoStack();
      let parking: BarParking | undefined;
      try {
        parking = this.#settle(bar, bar.planned, true, undo);
      } catch (error) {
        this.#retryFailed(bar, error, undo.unwind());
        continue;
      }
      undo.release();
      this.#park(bar, parking);
      if (parking) continue;
      restored++;
      this.#checkHugePfnGpa(bar);
    }
    return restored;
  }

  #retryFailed(bar: BarState, error: unknown, rollback: unknown[]): void {
    const index = bar.planned.index;
    const inner = error instanceof StepFailure ? error : undefined;
    const gpa = bar.planned.guestAddress;
    const wrapped = error instanceof MapError
      ? error
      : MapError.fromStep(inner ? inner.cause : error, inner?.step ?? 'decode', index, gpa, inner?.rollbackErrors ?? []);
    const all = [...wrapped.rollbackErrors, ...rollback];
    if (all.length > 0) this.#log.warn(`BAR${index}: ${all.length} error(s) while undoing a failed retry of its slots`);
    if (bar.retryFailure === wrapped.code) return;
    bar.retryFailure = wrapped.code;
    this.#warn({
      bar: index, code: 'RETRY_FAILED',
      message: `BAR${index}: stays parked (${bar.parked!.code}): giving it its slots back failed: ${wrapped.message}`,
    });
  }

  /**
   * Brings `bar`'s resources to `next`'s placement with the given decode: mmaps fresh where none are
   * kept, then moves, attaches, detaches or only re-places each resource. Every change goes on `undo`.
   */
  #reconcile(bar: BarState, next: PlannedBar, decode: boolean, undo: UndoStack): void {
    const wantAttached = decode && next.mappings.length > 0;
    const targets = next.mappings.length > 0 ? next.mappings : (next.suspended ?? []);
    if (bar.resources.length === 0) {
      // Mapped while unmappable (never mmapped): mmap now, as `map` would have. With decode off the
      // placement alone changes; enabling decode mmaps then.
      if (wantAttached) for (const target of targets) this.#attachFresh(bar, target, undo, undefined, next);
      return;
    }
    checkSameShape(bar, targets);
    const order = travelOrder(bar.resources.length, bar.planned.guestAddress, next.guestAddress);
    for (const i of order) {
      const resource = bar.resources[i]!;
      const target = targets[i]!;
      if (resource.attached && wantAttached) undo.push(resource.move(target));
      else if (resource.attached) {
        undo.push(resource.detach());
        undo.push(resource.place(target));
      }
      else if (wantAttached) undo.push(resource.attach(target));
      else undo.push(resource.place(target));
    }
  }

  /** mmaps one mapping (and attaches it unless told not to), recording both on `undo`. */
  #attachFresh(bar: BarState, mapping: DirectMapping, undo: UndoStack, mode: 'detached' | undefined, planned = bar.planned): void {
    const resource = DirectResource.mmap(this.#resourceContext(bar.pageSize), planned, mapping);
    bar.resources.push(resource);
    undo.push(() => {
      bar.resources.splice(bar.resources.indexOf(resource), 1);
      const errors = resource.release();
      if (errors.length === 0) return;
      this.#orphans.push({ bar: planned.index, resource });
      throw errors[0];
    });
    if (mode !== 'detached') undo.push(resource.attach(mapping));
  }

  /** What every resource shares, for one page size: made once, not spread afresh for each mapping. */
  #resourceContext(pageSize: bigint): ResourceContext {
    if (this.#lastContext?.pageSize !== pageSize) this.#lastContext = { ...this.#ctx, pageSize };
    return this.#lastContext;
  }

  #unmap(index: number): void {
    const bar = this.#bars.get(index);
    if (!bar) return;
    const errors: unknown[] = [];
    for (let i = bar.resources.length - 1; i >= 0; i--) errors.push(...bar.resources[i]!.release());
    bar.resources = bar.resources.filter((r) => !r.released);
    if (errors.length > 0) throw MapError.fromStep(errors[0], 'unmap', index, bar.planned.guestAddress, errors.slice(1));
    this.#bars.delete(index);
    this.#log.info(`BAR${index}: unmapped`);
  }

  #unmapAll(): void {
    const errors: unknown[] = [];
    for (const orphan of this.#orphans.splice(0)) {
      const failed = orphan.resource.release();
      if (failed.length > 0) this.#orphans.push(orphan);
      if (failed.length > 0) errors.push(MapError.fromStep(failed[0], 'unmap', orphan.bar, orphan.resource.placed.gpa, failed.slice(1)));
    }
    for (const index of [...this.#bars.keys()].reverse()) {
      try {
        this.#unmap(index);
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  #replan(bar: BarState, guestAddress: bigint): { bar: PlannedBar; warnings: readonly PlanWarning[] } {
    try {
      const result = replanBar(bar.planned, bar.pageSize, guestAddress);
      return { bar: deepFreeze(result.bar), warnings: result.warnings };
    } catch (error) {
      throw MapError.fromStep(error, 'move', bar.planned.index, guestAddress, []);
    }
  }

  #reportMove(
    before: PlannedBar,
    next: PlannedBar,
    warnings: readonly PlanWarning[],
    wasParked: BarParking | undefined,
    parking: BarParking | undefined,
  ): MoveResult {
    for (const w of warnings) this.#warn({ bar: w.bar, code: w.code, message: w.message });
    if (parking) {
      // A new parking was the warning (#park); staying parked while the guest moves on is routine.
      if (sameParking(wasParked, parking)) this.#log.info(`BAR${next.index}: moved to ${hex(next.guestAddress!)}, still parked`);
      return { state: 'trapped', reason: parking.reason, parked: parking };
    }
    if (stateOf(next) === 'trapped') {
      const reason = next.reasons.at(-1)?.message ?? `BAR${next.index}: trapped`;
      this.#log.warn(`BAR${next.index}: moved to ${hex(next.guestAddress!)}, now trapped: ${reason}`);
      return { state: 'trapped', reason };
    }
    const reason = stateOf(before) === 'trapped' || wasParked
      ? `BAR${next.index}: mapped again at ${hex(next.guestAddress!)}`
      : `BAR${next.index}: moved ${hex(before.guestAddress ?? 0n)} -> ${hex(next.guestAddress!)}`;
    this.#log.info(reason);
    return { state: 'direct', reason };
  }

  /**
   * KVM maps a huge block at stage 2 only when the GPA agrees with the host address modulo the block. A
   * guest that places a BAR off its natural alignment loses that: say so once per placement (typed).
   */
  #checkHugePfnGpa(bar: BarState): void {
    if (!this.#ctx.hugePfnAlign) return;
    for (const resource of bar.resources) {
      const { gpa } = resource.placed;
      const placement = resource.hugePfn;
      if (!resource.attached || gpa === undefined || !placement || gpa % placement.align === resource.host.address % placement.align) {
        continue;
      }
      this.#warn({
        bar: bar.planned.index, code: 'HUGE_PFN_GPA_MISMATCH',
        message: `BAR${bar.planned.index}: gpa ${hex(gpa)} and host address ${hex(resource.host.address)} `
          + `differ modulo ${hex(placement.align)}: `
          + 'KVM maps this range with small pages (slower, still correct)',
      });
    }
  }

  #warn(warning: MapperWarning): void {
    this.#warnings.push(Object.freeze(warning));
    if (this.#warnings.length > MAX_WARNINGS) this.#warnings.shift();
    this.#log.warn(warning.message);
  }

  #dmaTarget(dmaMap: boolean): DmaMapper | undefined {
    if (!dmaMap) return undefined;
    const dma = this.#device.dma;
    if (!dma) {
      this.#log.info(
        `${this.#device.bdf}: no IOMMU (${this.#device.iommuMode}): DMA mapping skipped, the device uses host physical addresses`
      );
      return undefined;
    }
    if (dma.mmioDmaUnsupported) {
      // Peer-to-peer DMA to the BARs will not work; everything else does. Say so once, never fail opaquely.
      this.#log.warn(`${this.#device.bdf}: BARs mapped without DMA (${dma.mmioDmaUnsupported.code}): ${dma.mmioDmaUnsupported.message}`);
      return undefined;
    }
    return dma;
  }

  #barFor(step: MapStep, index: number): BarState {
    this.#assertUsable(step);
    this.#assertDeviceOpen(step);
    checkBarIndex(step, index);
    const bar = this.#bars.get(index);
    if (!bar) throw new MapError(`BAR${index} is not mapped`, { step, code: 'NOT_MAPPED', bar: index });
    return bar;
  }

  /** A closed device's fd number may already name another file: never mmap or DMA-map through it. */
  #assertDeviceOpen(step: MapStep): void {
    if (this.#device.closed === true) throw new MapError(`${this.#device.bdf}: the device is closed`, { step, code: 'DEVICE_CLOSED' });
  }

  #assertUsable(step: MapStep): void {
    if (this.#disposed) throw new MapError('the BarMapper was disposed', { step, code: 'DISPOSED' });
  }

  /** Each mapping and trapped range of a newly mapped BAR, with its reason; formatted only when someone reads it. */
  #logBar(bar: PlannedBar): void {
    if (!this.#log.enabled) return;
    for (const m of bar.mappings) this.#log.info(
      `BAR${bar.index}: mapped ${hex(m.barOffset)}+${hex(m.size)} at gpa ${hex(m.gpa!)}: ${m.reason}`
    );
    if (bar.msix?.relocated) this.#log.info(`BAR${bar.index}: ${bar.msix.reason}`);
    for (const t of bar.trapped) this.#log.debug(`BAR${bar.index}: trapped ${hex(t.barOffset)}+${hex(t.size)}: ${t.reason}`);
  }
}

/** Move slots in the direction of travel so none lands on a sibling that has not moved yet (EEXIST). */
function travelOrder(count: number, from: bigint | undefined, to: bigint | undefined): number[] {
  const order: number[] = [];
  for (let i = 0; i < count; i++) order.push(i); // not Array.from({ length }): V8's slow path, ~10 % of a move's JavaScript
  return (to ?? 0n) > (from ?? 0n) ? order.reverse() : order;
}

/** Kept mmaps are reused only for the same file ranges; a replan never changes them (checked, not assumed). */
function checkSameShape(bar: BarState, targets: readonly DirectMapping[]): void {
  const same = targets.length === bar.resources.length
    && targets.every((t, i) => t.fileOffset === bar.resources[i]!.placed.fileOffset && t.size === bar.resources[i]!.placed.size);
  if (!same) {
    throw new MapError(
      `BAR${bar.planned.index}: the new placement changes the mapped file ranges`,
      { step: 'move', code: 'PLAN_MISMATCH', bar: bar.planned.index },
    );
  }
}

/** Unwinds `undo` and wraps the cause (a resource's StepFailure keeps its own rollback errors). */
function failure(error: unknown, step: MapStep, bar: number, gpa: bigint | undefined, undo: UndoStack): MapError {
  if (error instanceof MapError) {
    const rollback = undo.unwind();
    return rollback.length === 0 ? error : new MapError(
      error.message,
      { step: error.step, code: error.code, bar, rollbackErrors: [...error.rollbackErrors, ...rollback] },
      { cause: error },
    );
  }
  const inner = error instanceof StepFailure ? error : undefined;
  const rollback = [...(inner?.rollbackErrors ?? []), ...undo.unwind()];
  // `map` reports the resource's own step (mmap, kvm-slot, dma-map); move and decode report themselves.
  const named = step === 'validate' && inner ? inner.step : step;
  return MapError.fromStep(inner ? inner.cause : error, named, bar, gpa, rollback);
}

/** `error` with the errors of undoing an attempt added to its rollback errors. */
function withRollback(error: unknown, rollback: unknown[]): unknown {
  if (error instanceof StepFailure) return new StepFailure(error.step, error.cause, [...error.rollbackErrors, ...rollback]);
  if (error instanceof MapError) {
    const { step, code, bar, gpa, errno } = error;
    const details = {
      step, code, ...(bar !== undefined && { bar }), ...(gpa !== undefined && { gpa }), ...(errno !== undefined && { errno }),
      rollbackErrors: [...error.rollbackErrors, ...rollback],
    };
    return new MapError(error.message, details, { cause: error.cause });
  }
  return new StepFailure('move', error, rollback);
}

function snapshot(index: number, s: BarState): MappedBar {
  const regions = s.resources.map((r) => Object.freeze({
    mapping: r.placed,
    host: Object.freeze({ address: r.host.address, length: r.host.length, view: r.host.view }),
    slot: r.slot,
    iova: r.iova,
    ...(r.released && { released: true }),
  }));
  return Object.freeze({
    index,
    planned: s.planned,
    guestAddress: s.planned.guestAddress,
    state: s.parked ? 'trapped' : stateOf(s.planned),
    ...(s.parked && { parked: s.parked }),
    decode: s.decode,
    regions: Object.freeze(regions),
  });
}

/** Trapped: the placement withholds every direct mapping (unaligned GPA); direct otherwise. */
function stateOf(bar: PlannedBar): 'direct' | 'trapped' {
  return bar.mappings.length === 0 && (bar.suspended?.length ?? 0) > 0 ? 'trapped' : 'direct';
}

/** The mapper's own immutable copy of a caller's planned BAR (plain data; anything else is BAD_PLAN). */
function frozenCopy(bar: PlannedBar): PlannedBar {
  try {
    return deepFreeze(structuredClone(bar));
  } catch (error) {
    throw new MapError(
      `BAR${bar.index}: the plan is not plain data`,
      { step: 'validate', code: 'BAD_PLAN', bar: bar.index },
      { cause: error },
    );
  }
}
