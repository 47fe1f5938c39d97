/* GsiRouter: a VM's KVM GSI routing table (documented on the class). */
import { KVM_IRQ_CAP, encodeIrqRouting, type KvmRoutingEntry } from '../uapi/index.js';
import type { Syscalls } from '../sys/syscalls.js';
import { GuestError } from './errors.js';

/** GSI numbers the VMM lets the library use: [first, first + count). */
export interface GsiRange {
  /** The first GSI. */
  readonly first: number;
  /** How many GSIs. */
  readonly count: number;
}

/** Options of the {@link GsiRouter} constructor. */
export interface GsiRouterOptions {
  /** The GSIs devices may draw from (the VMM keeps its own outside this range). */
  readonly grant: GsiRange;
  /** The VMM's own routes, written with every table (e.g. {@link x86DefaultIrqchipRoutes} on x86). */
  readonly vmmRoutes?: readonly KvmRoutingEntry[];
}

/** A VM as the router needs it (KvmVm satisfies it). */
export interface RoutedVm {
  /** The VM fd. */
  readonly fd: number;
  /** The kernel interface. */
  readonly syscalls: Syscalls;
}

/** A block of GSIs handed to one device; `release` returns it and drops its routes. */
export interface GsiBlock {
  /** The block's first GSI. */
  readonly first: number;
  /** How many GSIs the block holds. */
  readonly count: number;
}

/**
 * Owns a VM's KVM GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so everyone who routes
 * interrupts in the VM (the VMM's own irqchip pins, each passed-through device's MSI-X vectors) contributes
 * entries here and the router writes the union. GSI numbers belong to the VMM: it grants the library a range,
 * which devices draw blocks from. Share one router between all devices of a VM.
 *
 * @example
 * const router = new GsiRouter(vm, { grant: { first: 64, count: 512 }, vmmRoutes: x86DefaultIrqchipRoutes() });
 * using nvme = new PassthroughDevice(device, mapper, vm, { interrupts: { mode: 'irqfd', router } });
 */
export class GsiRouter {
  readonly #vm: RoutedVm;
  readonly #grant: GsiRange;
  #vmmRoutes: KvmRoutingEntry[];
  readonly #routes = new Map<number, KvmRoutingEntry>();
  readonly #blocks = new Map<number, number>();
  /** KVM_CAP_IRQ_ROUTING: the most entries KVM accepts (4096 on x86 and arm64). */
  readonly maxRoutes: number;

  /**
   * Needs an in-kernel irqchip in the VM (x86: KVM_CREATE_IRQCHIP; arm64: a vGIC). Throws GuestError
   * `NO_IRQ_ROUTING` when KVM cannot route, `BAD_GSI_RANGE` for a grant beyond the table.
   * @example
   * const router = new GsiRouter(vm, { grant: { first: 64, count: 512 }, vmmRoutes: x86DefaultIrqchipRoutes() });
   */
  constructor(vm: RoutedVm, options: GsiRouterOptions) {
    this.#vm = vm;
    this.maxRoutes = vm.syscalls.ioctl(vm.fd, 'KVM_CHECK_EXTENSION', KVM_IRQ_CAP.IRQ_ROUTING);
    if (this.maxRoutes <= 0) throw new GuestError('KVM cannot route interrupts (KVM_CAP_IRQ_ROUTING is 0)', { code: 'NO_IRQ_ROUTING' });
    const { first, count } = options.grant;
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 || first + count > this.maxRoutes) {
      throw new GuestError(`GSI range ${first}+${count} does not fit KVM's ${this.maxRoutes} routes`, { code: 'BAD_GSI_RANGE' });
    }
    this.#grant = options.grant;
    this.#vmmRoutes = this.#checkVmmRoutes(options.vmmRoutes ?? []);
  }

  /**
   * Replaces the VMM's own routes (its irqchip pins, its emulated devices' MSIs) and writes the table.
   * On failure the previous routes are kept. Throws GuestError `BAD_GSI_RANGE` for a route in the grant.
   */
  setVmmRoutes(routes: readonly KvmRoutingEntry[]): void {
    const previous = this.#vmmRoutes;
    this.#vmmRoutes = this.#checkVmmRoutes(routes);
    try {
      this.commit();
    } catch (error) {
      this.#vmmRoutes = previous;
      throw error;
    }
  }

  #checkVmmRoutes(routes: readonly KvmRoutingEntry[]): KvmRoutingEntry[] {
    const { first, count } = this.#grant;
    for (const r of routes) {
      if (r.gsi >= first && r.gsi < first + count) {
        throw new GuestError(`VMM route for GSI ${r.gsi} lies in the granted range`, { code: 'BAD_GSI_RANGE', gsi: r.gsi });
      }
    }
    return [...routes];
  }

  /** Takes `count` consecutive GSIs from the grant. Throws GuestError `GSI_EXHAUSTED`. */
  allocate(count: number): GsiBlock {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`GSI block of ${count}`);
    const taken = [...this.#blocks].sort((a, b) => a[0] - b[0]);
    let candidate = this.#grant.first;
    for (const [first, n] of taken) {
      if (candidate + count <= first) break;
      candidate = Math.max(candidate, first + n);
    }
    if (candidate + count > this.#grant.first + this.#grant.count) {
      throw new GuestError(`no ${count} free GSIs left in ${this.#grant.first}+${this.#grant.count}`, { code: 'GSI_EXHAUSTED' });
    }
    this.#blocks.set(candidate, count);
    return { first: candidate, count };
  }

  /**
   * Returns a block; its routes are dropped and the table rewritten (when any was set). If KVM refuses
   * the new table, nothing changes (block and routes kept, so a retry can release them) and it throws.
   */
  release(block: GsiBlock): void {
    if (this.#blocks.get(block.first) !== block.count) return;
    const dropped: KvmRoutingEntry[] = [];
    for (let g = block.first; g < block.first + block.count; g++) {
      const route = this.#routes.get(g);
      if (route) dropped.push(route);
      this.#routes.delete(g);
    }
    try {
      if (dropped.length > 0) this.commit();
    } catch (error) {
      for (const route of dropped) this.#routes.set(route.gsi, route);
      throw error;
    }
    this.#blocks.delete(block.first);
  }

  /** The MSI route for `gsi` (inside an allocated block), or undefined. */
  route(gsi: number): KvmRoutingEntry | undefined {
    return this.#routes.get(gsi);
  }

  /**
   * Sets (or with `undefined` removes) the route of `gsi` and writes the table. On failure the previous
   * route is restored (KVM kept the old table) and the error is thrown.
   */
  setRoute(gsi: number, entry: KvmRoutingEntry | undefined): void {
    this.#checkOwned(gsi);
    if (entry && entry.gsi !== gsi) throw new RangeError(`route for GSI ${entry.gsi} passed for GSI ${gsi}`);
    const previous = this.#routes.get(gsi);
    if (entry) this.#routes.set(gsi, entry);
    else this.#routes.delete(gsi);
    try {
      this.commit();
    } catch (error) {
      if (previous) this.#routes.set(gsi, previous);
      else this.#routes.delete(gsi);
      throw error;
    }
  }

  /**
   * Writes the whole table (VMM routes, then every device route) with KVM_SET_GSI_ROUTING.
   *
   * @throws GuestError with the ioctl's errno name (e.g. `EINVAL` for a route KVM refuses).
   */
  commit(): void {
    const entries = [...this.#vmmRoutes, ...[...this.#routes.values()].sort((a, b) => a.gsi - b.gsi)];
    try {
      this.#vm.syscalls.ioctl(this.#vm.fd, 'KVM_SET_GSI_ROUTING', encodeIrqRouting(entries));
    } catch (error) {
      throw GuestError.wrap(error, `KVM_SET_GSI_ROUTING with ${entries.length} entries`, {});
    }
  }

  /** Routes currently set by devices (for tests and diagnostics). */
  get deviceRouteCount(): number {
    return this.#routes.size;
  }

  #checkOwned(gsi: number): void {
    for (const [first, n] of this.#blocks) if (gsi >= first && gsi < first + n) return;
    throw new GuestError(`GSI ${gsi} is not in a block allocated from this router`, { code: 'GSI_NOT_ALLOCATED', gsi });
  }
}

/**
 * The routing KVM installs with KVM_CREATE_IRQCHIP on x86 (GSI 0-15 to the PIC and the IOAPIC, 16-23
 * to the IOAPIC): pass it as `vmmRoutes` so writing the table keeps legacy interrupts working.
 */
export function x86DefaultIrqchipRoutes(): KvmRoutingEntry[] {
  const PIC_MASTER = 0;
  const PIC_SLAVE = 1;
  const IOAPIC = 2;
  const routes: KvmRoutingEntry[] = [];
  for (let gsi = 0; gsi < 24; gsi++) {
    routes.push({ gsi, type: 'irqchip', irqchip: IOAPIC, pin: gsi });
    if (gsi < 16) routes.push({ gsi, type: 'irqchip', irqchip: gsi < 8 ? PIC_MASTER : PIC_SLAVE, pin: gsi % 8 });
  }
  return routes;
}

