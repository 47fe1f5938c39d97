/* PassthroughDevice: the guest's view of one passed-through device (documented on the class). */
import type { Syscalls } from '../sys/syscalls.js';
import { VFIO_IRQ_FLAGS, VFIO_PCI_IRQ } from '../uapi/index.js';
import type { VfioDeviceHandle } from '../vfio/device-handle.js';
import type { DeviceDescription } from '../vfio/description.js';
import { RegionAccess } from '../vfio/region-access.js';
import type { GuestBarHost } from './bar-host.js';
import { VirtualConfigSpace } from './config-space.js';
import { GuestError } from './errors.js';
import { GsiRouter, type GsiRange } from './gsi-router.js';
import { MmioDispatcher } from './mmio-dispatch.js';
import { MsixInterrupts, type MsixDelivery } from './msix-interrupts.js';
import type { MsixMessage } from './msix-table.js';
import type { KvmRoutingEntry } from '../uapi/index.js';

/** How the device's MSI-X vectors reach the guest. */
export type InterruptOptions =
  /** In the kernel (device → eventfd → KVM irqfd → guest), through the VMM's router for this VM. */
  | {
    /** Kernel delivery. */ readonly mode: 'irqfd';
    /** The VMM's router for this VM (shared by its devices). */ readonly router: GsiRouter;
    /** arm64 ITS: the device id (requester id) MSI routes carry; omit on x86. */ readonly devid?: number;
  }
  /** In the kernel, with a router of the device's own over a GSI grant (when the VMM routes nothing itself). */
  | {
    /** Kernel delivery. */ readonly mode: 'irqfd';
    /** The GSIs this device may use. */ readonly gsis: GsiRange;
    /** The VMM's own routes, written with every routing table. */ readonly vmmRoutes?: readonly KvmRoutingEntry[];
    /** arm64 ITS: the device id MSI routes carry; omit on x86. */ readonly devid?: number;
  }
  /** In JavaScript: call `pollInterrupts()`; `onVector` gets each unmasked vector's message. */
  | {
    /** JavaScript delivery. */ readonly mode: 'callback';
    /** Called by `pollInterrupts()` for each signalled, unmasked vector. */
    readonly onVector: (vector: number, message: MsixMessage) => void;
  };

/** Options of the {@link PassthroughDevice} constructor. */
export interface PassthroughDeviceOptions {
  /** Default: no MSI-X delivery (the table is still emulated; SET_IRQS is never called). */
  readonly interrupts?: InterruptOptions;
  /** Extended capability ids to hide. Default Resizable BAR, SR-IOV, ARI. */
  readonly hideExtendedCaps?: readonly number[];
  /** The device's description, if the VMM already has it (saves the VFIO queries). */
  readonly description?: DeviceDescription;
}

/** A VM as the device needs it for irqfd delivery (KvmVm satisfies it). */
export interface GuestVm {
  /** The VM fd (KVM_IRQFD and KVM_SET_GSI_ROUTING go to it). */
  readonly fd: number;
  /** The kernel interface. */
  readonly syscalls: Syscalls;
}

/**
 * The guest's view of one passed-through VFIO PCI device, so a VMM's config-space and MMIO handlers are
 * one-line calls. It ties together the virtual config space ({@link VirtualConfigSpace}), the trapped-access
 * dispatcher ({@link MmioDispatcher}) and MSI-X interrupts ({@link MsixInterrupts}) over the BARs the mapper
 * placed; a guest BAR write moves the BAR through the mapper, COMMAND.MEM toggles its decode. The VMM still
 * owns its run loop, INTx and MSI (not supported), I/O BARs, the in-kernel irqchip and the GSI numbers it
 * grants. Not thread-safe: call its handlers on the thread that owns it (see the README, Threads).
 *
 * @example
 * using guest = new PassthroughDevice(device, mapper, vm, { interrupts: { mode: 'irqfd', router } });
 * vmm.onConfigRead((offset, size) => guest.configRead(offset, size));
 * vmm.onConfigWrite((offset, size, value) => guest.configWrite(offset, size, value));
 * vmm.onMmioExit((gpa, data, isWrite) => guest.handleMmio(gpa, data, isWrite)); // false: not this device's
 */
export class PassthroughDevice implements Disposable {
  /** PCI address of the device, for messages. */
  readonly bdf: string;
  /** MSI-X emulation and interrupts, when the device has MSI-X. */
  readonly msix: MsixInterrupts | undefined;
  readonly #config: VirtualConfigSpace;
  readonly #dispatch: MmioDispatcher;
  readonly #host: GuestBarHost;
  #closed = false;

  /**
   * @param device the open VFIO device
   * @param host where its BARs are placed (a BarMapper that has mapped the plan)
   * @param vm the VM, for irqfd delivery (may be undefined otherwise)
   * @param options interrupt delivery, extended capabilities to hide, a description the VMM already has
   * @throws GuestError when MSI-X setup fails (the device's description or its VFIO queries);
   *   RangeError when irqfd delivery is asked for without a VM.
   * @example
   * const guest = new PassthroughDevice(device, mapper, vm, { interrupts: { mode: 'irqfd', router } });
   * // in the VMM's handlers:
   * onConfigRead = (offset, size) => guest.configRead(offset, size);
   * onConfigWrite = (offset, size, value) => guest.configWrite(offset, size, value);
   * onMmio = (gpa, data, isWrite) => guest.handleMmio(gpa, data, isWrite);
   */
  constructor(device: VfioDeviceHandle, host: GuestBarHost, vm: GuestVm | undefined, options: PassthroughDeviceOptions = {}) {
    const description = options.description ?? device.describe();
    this.bdf = device.bdf;
    this.#host = host;
    const region = new RegionAccess(device, description);
    const bars = [0, 1, 2, 3, 4, 5].filter((i) => host.plannedBar(i) !== undefined);
    this.msix = description.msix ? msixFor(device, description, region, vm, options.interrupts) : undefined;
    this.#dispatch = new MmioDispatcher(host, region, this.msix, bars, device.bdf);
    this.#config = new VirtualConfigSpace({
      bdf: device.bdf, region, host, bars, ...(description.msix && { msix: description.msix }),
      ...(options.hideExtendedCaps && { hideExtendedCaps: options.hideExtendedCaps }),
      hooks: {
        msixControl: (enabled, masked) => this.msix?.setControl(enabled, masked),
        decode: (index, enabled) => {
          this.#dispatch.setDecode(index, enabled);
          this.#dispatch.refresh(); // a decode change can park or unpark BARs
        },
        moved: () => this.#dispatch.refresh(),
      },
    });
  }

  /**
   * A guest config-space read (1, 2 or 4 bytes, naturally aligned). See VirtualConfigSpace.configRead.
   *
   * @throws GuestError `CLOSED` after close, `BAD_CONFIG_ACCESS` for an access that is not naturally aligned in 0-0xfff;
   *   VfioError when the device's config region cannot be read.
   */
  configRead(offset: number, size: 1 | 2 | 4): number {
    this.#assertOpen();
    return this.#config.configRead(offset, size);
  }

  /**
   * A guest config-space write: emulated bits update the virtual state (and may move a BAR, toggle decode or
   * enable MSI-X), the rest reaches the device. See VirtualConfigSpace.configWrite.
   *
   * A BAR placed over another of its BARs or any KVM slot is not an error: the mapper parks it (no slots, state
   * `'trapped'`, `parked` in `mapper.bars`) and this device serves its accesses by trapping until the overlap ends.
   *
   * @throws GuestError `CLOSED` after close, `BAD_CONFIG_ACCESS`, or the wrapped failure of a BAR move, decode change or
   *   SET_IRQS (with its errno; a kernel fault, never an overlap); RangeError for a value that does not fit `size` bytes.
   */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.#assertOpen();
    this.#config.configWrite(offset, size, value);
  }

  /**
   * A guest MMIO exit: true when one of this device's BARs holds `gpa` (reads fill `data` in place).
   * See MmioDispatcher.handleMmio.
   *
   * @throws GuestError `CLOSED` after close, `BAD_ARGUMENT` for a gpa that is not a bigint or 1-8 data bytes;
   *   VfioError when the device access (pread/pwrite) fails.
   * @example
   * const exit = vcpu.run();
   * if (exit.kind === 'mmio') guest.handleMmio(exit.address, vcpu.mmioData().subarray(0, exit.length), exit.isWrite);
   */
  handleMmio(gpa: bigint, data: Uint8Array, isWrite: boolean): boolean {
    if (this.#closed) this.#assertOpen();
    return this.#dispatch.handleMmio(gpa, data, isWrite);
  }

  /**
   * Moves a BAR on the VMM's initiative (not through config space) and keeps dispatch in step.
   *
   * @throws MapError from the mapper's `move` (the BAR stays where it was).
   */
  moveBar(index: number, guestAddress: bigint): void {
    this.#host.move(index, guestAddress);
    this.#dispatch.refresh();
  }

  /** Re-reads BAR placements after the VMM moved BARs through the mapper directly. */
  refresh(): void {
    this.#dispatch.refresh();
  }

  /** 'callback' delivery: drains the vectors' eventfds and calls `onVector`. Returns the messages delivered. */
  pollInterrupts(): number {
    return this.msix?.poll() ?? 0;
  }

  /**
   * Releases the interrupt setup (irqfds, routes, SET_IRQS, eventfds); the BARs stay with the mapper.
   * Idempotent; if a release fails it throws, and calling `close` again retries what is left.
   */
  close(): void {
    if (!this.#closed) this.#closed = true;
    this.msix?.close();
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** After close the guest must not re-enable MSI-X behind the VMM's back: every handler refuses. */
  #assertOpen(): void {
    if (this.#closed) throw new GuestError(`${this.bdf}: PassthroughDevice is closed`, { code: 'CLOSED', bdf: this.bdf });
  }
}

function msixFor(
  device: VfioDeviceHandle,
  description: DeviceDescription,
  region: RegionAccess,
  vm: GuestVm | undefined,
  interrupts: InterruptOptions | undefined,
): MsixInterrupts {
  const msix = description.msix!;
  const info = description.irqs.find((i) => i.index === VFIO_PCI_IRQ.MSIX);
  return new MsixInterrupts({
    bdf: device.bdf,
    syscalls: device.syscalls,
    deviceFd: device.fd,
    vectors: msix.vectors,
    noresize: ((info?.flags ?? 0) & VFIO_IRQ_FLAGS.NORESIZE) !== 0,
    region,
    pba: msix.pba,
    delivery: delivery(vm, interrupts),
  });
}

function delivery(vm: GuestVm | undefined, interrupts: InterruptOptions | undefined): MsixDelivery {
  if (!interrupts) return { mode: 'callback', onVector: () => undefined };
  if (interrupts.mode === 'callback') return interrupts;
  if (!vm) throw new RangeError('irqfd delivery needs the VM');
  const router = 'router' in interrupts
    ? interrupts.router
    : new GsiRouter(vm, { grant: interrupts.gsis, ...(interrupts.vmmRoutes && { vmmRoutes: interrupts.vmmRoutes }) });
  return { mode: 'irqfd', vmFd: vm.fd, router, ...(interrupts.devid !== undefined && { devid: interrupts.devid }) };
}
