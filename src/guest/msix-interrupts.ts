/* MSI-X interrupts of a passed-through device (documented on MsixInterrupts). */
import { constants } from 'node:os';
import { EFD_FLAGS, type Syscalls } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';
import { ErrorCollector } from '../util/error-collector.js';
import {
  KVM_IRQFD_FLAGS,
  VFIO_PCI_IRQ,
  encodeIrqSetDisable,
  encodeIrqSetEventfds,
  encodeIrqfd,
  type KvmRoutingEntry,
} from '../uapi/index.js';
import { UndoStack } from '../util/undo-stack.js';
import type { RegionAccess } from '../vfio/region-access.js';
import { GuestError } from './errors.js';
import type { GsiBlock, GsiRouter } from './gsi-router.js';
import type { MsixAccess } from './mmio-dispatch.js';
import { MsixTableShadow, type MsixMessage } from './msix-table.js';

/** How vectors reach the guest. */
export type MsixDelivery =
  /** In the kernel: GSI routes + KVM irqfds. `devid` is the guest requester id (arm64 ITS: KVM_MSI_VALID_DEVID). */
  | {
    /** Kernel delivery. */ readonly mode: 'irqfd';
    /** The VM fd (KVM_IRQFD goes to it). */ readonly vmFd: number;
    /** The VM's GSI router. */ readonly router: GsiRouter;
    /** The guest requester id MSI routes carry (arm64 ITS); omit on x86. */ readonly devid?: number;
  }
  /** In JavaScript: `poll()` drains the eventfds and calls `onVector` for each unmasked vector that fired. */
  | {
    /** JavaScript delivery. */ readonly mode: 'callback';
    /** Called per signalled, unmasked vector with its message. */
    readonly onVector: (vector: number, message: MsixMessage) => void;
  };

/** Options of the {@link MsixInterrupts} constructor. */
export interface MsixInterruptsOptions {
  /** PCI address, for messages. */
  readonly bdf: string;
  /** The kernel interface. */
  readonly syscalls: Syscalls;
  /** The VFIO device fd (VFIO_DEVICE_SET_IRQS goes to it). */
  readonly deviceFd: number;
  /** The device's MSI-X table size. */
  readonly vectors: number;
  /** VFIO_IRQ_INFO_NORESIZE for the MSI-X index: the vector count cannot grow while enabled. */
  readonly noresize: boolean;
  /** Device region access, for the real PBA. */
  readonly region: RegionAccess;
  /** Where the device's real PBA is: BAR index and offset in that region. */
  readonly pba: {
    /** BAR (region) index of the PBA. */ readonly bir: number;
    /** Offset of the PBA in that region. */ readonly offset: bigint;
    /** PBA size in bytes. */ readonly size: bigint;
  };
  /** How vectors reach the guest. */
  readonly delivery: MsixDelivery;
}

const NO_FD = -1;

/**
 * MSI-X interrupts of a passed-through device, driven by the shadow table (msix-table.ts):
 *
 * * VFIO side: one eventfd per vector in use, given to the device with `VFIO_DEVICE_SET_IRQS`
 *   (DATA_EVENTFD | ACTION_TRIGGER, index MSI-X). Vectors are enabled as the guest unmasks them; when the
 *   kernel reports NORESIZE, growing the count means disabling and re-enabling all of them.
 * * KVM side ('irqfd' delivery): an MSI route per unmasked vector in the VM's GsiRouter and a KVM irqfd
 *   on the vector's eventfd, so an interrupt goes device → eventfd → KVM → guest without JavaScript.
 *   A masked vector has its irqfd detached: the device's signals accumulate in the eventfd, which the
 *   PBA read and the unmask look at (an unmask re-attaches and KVM delivers what is pending).
 * * 'callback' delivery: no KVM objects; `poll()` drains the eventfds and calls the VMM per message.
 *
 * INTx and MSI (non-X) are out of scope. Everything acquired is released on disable, on close and on
 * every failure (an UndoStack per operation).
 *
 * {@link PassthroughDevice} builds one (its `msix`); use it directly only with your own config space.
 */
export class MsixInterrupts implements MsixAccess {
  /** The guest's MSI-X table, as the guest last wrote it. */
  readonly shadow: MsixTableShadow;
  readonly #o: MsixInterruptsOptions;
  /** Vectors with an eventfd (and, while `#vfioEnabled`, a VFIO trigger): [0, count). */
  #count = 0;
  /** VFIO has MSI-X enabled for the device (SET_IRQS with eventfds succeeded, no disable since). */
  #vfioEnabled = false;
  readonly #eventfds: number[] = [];
  readonly #attached: Uint8Array;
  #gsis: GsiBlock | undefined;
  readonly #counter = Buffer.alloc(8);
  readonly #one = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);
  readonly #pbaScratch: Buffer;

  constructor(options: MsixInterruptsOptions) {
    this.#o = options;
    this.shadow = new MsixTableShadow(options.vectors);
    this.#attached = new Uint8Array(options.vectors);
    this.#pbaScratch = Buffer.alloc(Number(options.pba.size));
  }

  /** Vectors currently enabled in VFIO (each with an eventfd). */
  get enabledVectors(): number {
    return this.#count;
  }

  /** The eventfd the device signals for `vector`, while it is enabled. */
  eventfd(vector: number): number | undefined {
    return vector < this.#count ? this.#eventfds[vector] : undefined;
  }

  /** The GSI of `vector` in 'irqfd' delivery, while MSI-X is enabled. */
  gsi(vector: number): number | undefined {
    return this.#gsis ? this.#gsis.first + vector : undefined;
  }

  /**
   * Message Control as the guest wrote it (enable, function mask). Enabling sets up VFIO triggers,
   * routes and irqfds for the unmasked vectors; disabling releases them all. On failure the previous
   * state is kept and a GuestError is thrown.
   */
  setControl(enabled: boolean, functionMasked: boolean): void {
    const shadow = this.shadow;
    if (enabled && !shadow.enabled) {
      shadow.functionMasked = functionMasked;
      this.#enable();
    } else if (!enabled && shadow.enabled) {
      shadow.functionMasked = functionMasked;
      this.#releaseAll();
    } else if (functionMasked !== shadow.functionMasked) {
      shadow.functionMasked = functionMasked;
      this.#syncAll();
    }
  }

  /** A guest read of the MSI-X table at `offset` (from the table's start), served from the shadow. */
  tableRead(offset: number, data: Uint8Array): void {
    this.shadow.read(offset, data);
  }

  /**
   * A guest write of the MSI-X table: updates the shadow and, when a vector's mask or message changes while
   * MSI-X is enabled, its VFIO trigger, route and irqfd.
   *
   * @throws GuestError wrapping the failing SET_IRQS / routing / irqfd call (state rolled back).
   */
  tableWrite(offset: number, data: Uint8Array): void {
    this.shadow.write(offset, data, this.#onEntryChanged);
  }

  /** Made once: a table write allocates no closure. */
  readonly #onEntryChanged = (vector: number): void => {
    if (this.shadow.enabled) this.#sync(vector, true);
  };

  /** PBA as the guest sees it: the device's real pending bits OR the ones the library holds for masked vectors. */
  pbaRead(offset: number, data: Uint8Array): void {
    const scratch = this.#pbaScratch.subarray(offset, offset + data.length);
    this.#o.region.readInto(this.#o.pba.bir, this.#o.pba.offset + BigInt(offset), scratch);
    for (let i = 0; i < data.length; i++) {
      let bits = scratch[i]!;
      for (let b = 0; b < 8; b++) {
        const vector = (offset + i) * 8 + b;
        if (vector < this.shadow.vectors && this.#pendingNow(vector)) bits |= 1 << b;
      }
      data[i] = bits;
    }
  }

  /**
   * 'callback' delivery: drains every enabled vector's eventfd; calls `onVector` for unmasked ones and
   * records the masked ones as pending (delivered on unmask). Returns how many messages were delivered.
   */
  poll(): number {
    const delivery = this.#o.delivery;
    if (delivery.mode !== 'callback') return 0;
    let delivered = 0;
    for (let v = 0; v < this.#count; v++) {
      if (!this.#drain(v)) continue;
      if (this.shadow.deliverable(v)) {
        delivery.onVector(v, this.shadow.message(v));
        delivered++;
      } else {
        this.shadow.setPending(v, true);
      }
    }
    return delivered;
  }

  /**
   * Releases everything (as a guest disable would) and returns the GSI block. Keeps going past errors;
   * what could not be released stays recorded, so calling `close` again retries exactly that.
   */
  close(): void {
    this.#releaseAll();
    this.shadow.reset();
  }

  // ---- enable / disable ---------------------------------------------------------------------------

  #enable(): void {
    const undo = new UndoStack();
    try {
      if (this.#vfioEnabled || this.#gsis) this.#releaseAll(); // leftovers of a disable that failed half-way
      const delivery = this.#o.delivery;
      if (delivery.mode === 'irqfd') {
        const block = delivery.router.allocate(this.shadow.vectors);
        this.#gsis = block;
        undo.push(() => {
          delivery.router.release(block);
          this.#gsis = undefined;
        });
      }
      this.#grow(Math.max(1, this.shadow.highestUnmasked() + 1), undo);
      this.shadow.enabled = true;
      undo.push(() => { this.shadow.enabled = false; });
      for (let v = 0; v < this.#count; v++) if (this.shadow.deliverable(v)) this.#attach(v, undo);
      undo.release();
    } catch (error) {
      throw this.#fail(error, 'enabling MSI-X', undefined, undo);
    }
  }

  /**
   * Detaches every irqfd, drops the routes, disables the VFIO triggers and closes the eventfds. Keeps
   * going past errors; a route table or SET_IRQS that failed stays recorded for the next attempt.
   */
  #releaseAll(): void {
    const steps = new ErrorCollector();
    for (let v = 0; v < this.#count; v++) if (this.#attached[v]) steps.attempt(() => this.#detach(v));
    const delivery = this.#o.delivery;
    const block = this.#gsis;
    if (delivery.mode === 'irqfd' && block) {
      steps.attempt(() => {
        delivery.router.release(block);
        this.#gsis = undefined;
      });
    }
    if (this.#vfioEnabled) {
      steps.attempt(() => {
        this.#setIrqs(encodeIrqSetDisable(VFIO_PCI_IRQ.MSIX), 'disabling MSI-X triggers');
        this.#vfioEnabled = false;
      });
    }
    // Closing an eventfd also detaches any irqfd KVM still had on it (KVM sees EPOLLHUP).
    this.#closeEventfds(0);
    this.#attached.fill(0);
    this.#count = 0;
    this.shadow.enabled = false;
    for (let v = 0; v < this.shadow.vectors; v++) this.shadow.setPending(v, false);
    if (steps.errors.length > 0) {
      throw GuestError.wrap(
        steps.errors[0],
        `${this.#o.bdf}: releasing MSI-X`,
        { bdf: this.#o.bdf, rollbackErrors: steps.errors.slice(1) },
      );
    }
  }

  /** Enables vectors [0, count) in VFIO with one eventfd each (NORESIZE: disable, then re-enable all). */
  #grow(count: number, undo: UndoStack): void {
    const old = this.#count;
    if (count <= old) return;
    const { syscalls } = this.#o;
    for (let v = old; v < count; v++) {
      this.#eventfds[v] = syscalls.eventfd(0, EFD_FLAGS.NONBLOCK | EFD_FLAGS.CLOEXEC);
      undo.push(() => this.#closeEventfds(v));
    }
    const all = this.#eventfds.slice(0, count);
    if (old === 0) {
      this.#vfioOn(all, `enabling ${count} MSI-X vectors`, undo);
    } else if (this.#o.noresize) {
      // The kernel cannot add vectors to an enabled MSI-X: tear down and enable them all again.
      this.#vfioOff(`disabling MSI-X to grow ${old} -> ${count} vectors (NORESIZE)`, all.slice(0, old), undo);
      this.#vfioOn(all, `re-enabling ${count} MSI-X vectors`, undo);
    } else {
      this.#setIrqs(encodeIrqSetEventfds(VFIO_PCI_IRQ.MSIX, old, all.slice(old)), `adding MSI-X vectors ${old}-${count - 1}`);
      const noFds = all.slice(old).map(() => NO_FD);
      undo.push(() => this.#setIrqs(encodeIrqSetEventfds(VFIO_PCI_IRQ.MSIX, old, noFds), 'undo: removing MSI-X vectors'));
    }
    this.#count = count;
    undo.push(() => { this.#count = old; });
  }

  /** SET_IRQS with eventfds for vectors [0, fds.length); the undo disables again. */
  #vfioOn(fds: number[], what: string, undo: UndoStack): void {
    this.#setIrqs(encodeIrqSetEventfds(VFIO_PCI_IRQ.MSIX, 0, fds), what);
    this.#vfioEnabled = true;
    undo.push(() => {
      this.#setIrqs(encodeIrqSetDisable(VFIO_PCI_IRQ.MSIX), 'undo: disabling MSI-X triggers');
      this.#vfioEnabled = false;
    });
  }

  /** SET_IRQS DATA_NONE count 0; the undo re-enables `previous`. */
  #vfioOff(what: string, previous: number[], undo: UndoStack): void {
    this.#setIrqs(encodeIrqSetDisable(VFIO_PCI_IRQ.MSIX), what);
    this.#vfioEnabled = false;
    undo.push(() => {
      this.#setIrqs(encodeIrqSetEventfds(VFIO_PCI_IRQ.MSIX, 0, previous), 'undo: re-enabling MSI-X vectors');
      this.#vfioEnabled = true;
    });
  }

  // ---- per vector ---------------------------------------------------------------------------------

  #syncAll(): void {
    if (!this.shadow.enabled) return;
    for (let v = 0; v < this.shadow.vectors; v++) this.#sync(v, false);
  }

  /** Brings one vector's VFIO trigger, route and irqfd in line with the shadow table. */
  #sync(vector: number, messageMayHaveChanged: boolean): void {
    const undo = new UndoStack();
    try {
      if (this.shadow.deliverable(vector)) {
        if (vector >= this.#count) this.#grow(vector + 1, undo);
        if (!this.#attached[vector]) this.#attach(vector, undo);
        else if (messageMayHaveChanged) this.#route(vector, undo);
      } else if (this.#attached[vector]) {
        this.#detach(vector);
        undo.push(() => this.#attach(vector, new UndoStack()));
      }
      undo.release();
    } catch (error) {
      throw this.#fail(error, `updating MSI-X vector ${vector}`, vector, undo);
    }
  }

  /**
   * Unmasked: route + irqfd, then what fired while masked. The eventfd is drained first and signalled
   * again after the irqfd is attached: KVM injects a count it finds at assign time without consuming it,
   * which would later read as a stale pending bit.
   */
  #attach(vector: number, undo: UndoStack): void {
    const delivery = this.#o.delivery;
    if (delivery.mode === 'irqfd') {
      if (this.#drain(vector)) this.shadow.setPending(vector, true);
      this.#route(vector, undo);
      this.#irqfd(vector, false);
      undo.push(() => this.#irqfd(vector, true));
    }
    this.#attached[vector] = 1;
    undo.push(() => { this.#attached[vector] = 0; });
    if (this.shadow.pending(vector)) {
      this.shadow.setPending(vector, false);
      if (delivery.mode === 'irqfd') this.#o.syscalls.write(this.#eventfds[vector]!, this.#one);
      else delivery.onVector(vector, this.shadow.message(vector));
    }
  }

  #detach(vector: number): void {
    if (this.#o.delivery.mode === 'irqfd') this.#irqfd(vector, true);
    this.#attached[vector] = 0;
  }

  #route(vector: number, undo: UndoStack): void {
    const delivery = this.#o.delivery;
    if (delivery.mode !== 'irqfd') return;
    const gsi = this.#gsis!.first + vector;
    const previous = delivery.router.route(gsi);
    const m = this.shadow.message(vector);
    const entry: KvmRoutingEntry = {
      gsi,
      type: 'msi',
      addressLo: m.addressLo,
      addressHi: m.addressHi,
      data: m.data,
      ...(delivery.devid !== undefined && { devid: delivery.devid })
    };
    delivery.router.setRoute(gsi, entry);
    undo.push(() => delivery.router.setRoute(gsi, previous));
  }

  #irqfd(vector: number, deassign: boolean): void {
    const delivery = this.#o.delivery;
    if (delivery.mode !== 'irqfd') return;
    const gsi = this.#gsis!.first + vector;
    const args = encodeIrqfd({ fd: this.#eventfds[vector]!, gsi, flags: deassign ? KVM_IRQFD_FLAGS.DEASSIGN : 0 });
    try {
      this.#o.syscalls.ioctl(delivery.vmFd, 'KVM_IRQFD', args);
    } catch (error) {
      throw GuestError.wrap(
        error,
        `${this.#o.bdf}: KVM_IRQFD ${deassign ? 'deassign' : 'assign'} vector ${vector} gsi ${gsi}`,
        { bdf: this.#o.bdf, vector, gsi },
      );
    }
  }

  /** A masked vector's eventfd fired since last looked at: record it as pending. */
  #pendingNow(vector: number): boolean {
    if (vector < this.#count && !this.#attached[vector] && this.#drain(vector)) this.shadow.setPending(vector, true);
    return this.shadow.pending(vector);
  }

  /** Nonblocking read of the vector's eventfd: true when it had fired (its counter is now 0). */
  #drain(vector: number): boolean {
    try {
      return this.#o.syscalls.read(this.#eventfds[vector]!, this.#counter) === 8 && this.#counter.readBigUInt64LE(0) > 0n;
    } catch (error) {
      // EAGAIN and EWOULDBLOCK share errno 11; the name the table picks varies.
      if (error instanceof SystemError && error.errno === constants.errno.EAGAIN) return false;
      throw GuestError.wrap(error, `${this.#o.bdf}: reading MSI-X vector ${vector}'s eventfd`, { bdf: this.#o.bdf, vector });
    }
  }

  #setIrqs(arg: Buffer, what: string): void {
    try {
      this.#o.syscalls.ioctl(this.#o.deviceFd, 'VFIO_DEVICE_SET_IRQS', arg);
    } catch (error) {
      throw GuestError.wrap(error, `${this.#o.bdf}: VFIO_DEVICE_SET_IRQS ${what}`, { bdf: this.#o.bdf });
    }
  }

  /** Closes the eventfds of vectors >= `from` (quietly: an fd is gone after close either way). */
  #closeEventfds(from: number): void {
    while (this.#eventfds.length > from) {
      const fd = this.#eventfds.pop()!;
      try {
        this.#o.syscalls.close(fd);
      } catch {
        // close(2) never leaves the fd open on Linux.
      }
    }
  }

  #fail(error: unknown, what: string, vector: number | undefined, undo: UndoStack): GuestError {
    const rollbackErrors = undo.unwind();
    return GuestError.wrap(error, `${this.#o.bdf}: ${what}`, {
      bdf: this.#o.bdf, ...(vector !== undefined && { vector }), rollbackErrors,
    });
  }
}
