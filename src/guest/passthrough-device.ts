/**
 * `PassthroughDevice`: the guest's view of one passed-through VFIO PCI device, so a VMM's config-space
 * and MMIO handlers are one-line calls. It ties together the virtual config space (config-space.ts),
 * the trapped-access dispatcher (mmio-dispatch.ts) and MSI-X interrupts (msix-interrupts.ts) over the
 * BARs the mapper placed. The VMM still owns its run loop, INTx (not supported), I/O BARs, the
 * in-kernel irqchip and the GSI numbers it grants.
 */
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
  | { readonly mode: 'irqfd'; readonly router: GsiRouter; readonly devid?: number }
  /** In the kernel, with a router of the device's own over a GSI grant (when the VMM routes nothing itself). */
  | { readonly mode: 'irqfd'; readonly gsis: GsiRange; readonly vmmRoutes?: readonly KvmRoutingEntry[]; readonly devid?: number }
  /** In JavaScript: call `pollInterrupts()`; `onVector` gets each unmasked vector's message. */
  | { readonly mode: 'callback'; readonly onVector: (vector: number, message: MsixMessage) => void };

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
  readonly fd: number;
  readonly syscalls: Syscalls;
}

export class PassthroughDevice implements Disposable {
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
        decode: (index, enabled) => this.#dispatch.setDecode(index, enabled),
        moved: () => this.#dispatch.refresh(),
      },
    });
  }

  /** A guest config-space read (1, 2 or 4 bytes, naturally aligned). See VirtualConfigSpace.configRead. */
  configRead(offset: number, size: 1 | 2 | 4): number {
    this.#assertOpen();
    return this.#config.configRead(offset, size);
  }

  /** A guest config-space write. See VirtualConfigSpace.configWrite. */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.#assertOpen();
    this.#config.configWrite(offset, size, value);
  }

  /**
   * A guest MMIO exit: true when one of this device's BARs holds `gpa` (reads fill `data` in place).
   * See MmioDispatcher.handleMmio.
   */
  handleMmio(gpa: bigint, data: Uint8Array, isWrite: boolean): boolean {
    if (this.#closed) this.#assertOpen();
    return this.#dispatch.handleMmio(gpa, data, isWrite);
  }

  /** Moves a BAR on the VMM's initiative (not through config space) and keeps dispatch in step. */
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

  [Symbol.dispose](): void {
    this.close();
  }

  /** After close the guest must not re-enable MSI-X behind the VMM's back: every handler refuses. */
  #assertOpen(): void {
    if (this.#closed) throw new GuestError(`${this.bdf}: PassthroughDevice is closed`, { code: 'CLOSED', bdf: this.bdf });
  }
}

function msixFor(device: VfioDeviceHandle, description: DeviceDescription, region: RegionAccess, vm: GuestVm | undefined, interrupts: InterruptOptions | undefined): MsixInterrupts {
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
  const router = 'router' in interrupts ? interrupts.router : new GsiRouter(vm, { grant: interrupts.gsis, ...(interrupts.vmmRoutes && { vmmRoutes: interrupts.vmmRoutes }) });
  return { mode: 'irqfd', vmFd: vm.fd, router, ...(interrupts.devid !== undefined && { devid: interrupts.devid }) };
}
