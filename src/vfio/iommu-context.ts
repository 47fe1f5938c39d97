/* IommuContext: one IOMMU address space shared by a VM's devices (documented on the class). */
import {
  VFIO_API_VERSION, VFIO_EXTENSION, VFIO_GROUP_FLAGS, decodeAttachIommufdPt, decodeGroupStatus, decodeIoasAlloc,
  encodeAttachIommufdPt, encodeBindIommufd, encodeGroupStatus, encodeIoasAlloc,
} from '../uapi/index.js';
import { O_FLAGS, type Syscalls } from '../sys/syscalls.js';
import { realSyscalls } from '../sys/real-syscalls.js';
import { SystemError } from '../sys/system-error.js';
import { hex } from '../errors.js';
import type { DmaMapper } from './device-handle.js';
import { VfioError } from './errors.js';
import { UndoStack } from '../util/undo-stack.js';
import { IommufdDmaMapper, Type1DmaMapper } from './dma.js';
import { probeIommufdMmioDma } from './mmio-dma-support.js';
import { physicalExtents, type PhysicalExtent } from './physical-memory.js';
import { checkGuestMapping, checkRange, findOverlap, type DmaProtection, type GuestDmaMapping } from './guest-dma.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { SysfsOptions } from './sysfs.js';
import { byBigint } from '../util/compare.js';

/** The IOMMU path in force for a device or context (after `'auto'` was resolved). */
export type IommuMode = 'type1' | 'type1v2' | 'iommufd' | 'noiommu';
const REQUESTS: readonly string[] = ['auto', 'type1', 'noiommu', 'iommufd'];
/** What a caller asks for. `'auto'`: iommufd when the kernel has it (Linux 6.6+ cdev), else a legacy container. */
export type IommuRequest = 'auto' | 'type1' | 'noiommu' | 'iommufd';

/** Options of {@link IommuContext.open}. */
export interface IommuContextOptions extends SysfsOptions {
  /** Default `'auto'`: iommufd when `/dev/iommu` and `/dev/vfio/devices` exist, else a legacy container. */
  iommu?: IommuRequest;
  /** The kernel interface; default `realSyscalls()` (pass a wrapper to log or inject faults). */
  syscalls?: Syscalls;
}

/** What VfioDevice.open needs of a context; not part of the public API. */
export interface ContextInternals {
  readonly request: IommuRequest;
  readonly sysfs: SysfsOptions;
  /** Takes a device reference; the returned release is idempotent. */
  retain(bdf: string): () => void;
  /** Legacy: the group fd, opened and attached to the container on first use; `undo` gets the release. */
  acquireGroup(bdf: string, group: string, node: { path: string; noiommu: boolean }, undo: UndoStack): number;
  /** iommufd: binds `deviceFd` to the iommufd and attaches it to the IOAS. */
  bindDevice(deviceFd: number): void;
}

interface OpenedBackend {
  readonly backend: 'container' | 'iommufd';
  readonly fd: number;
  readonly ioasId?: number;
  readonly reason: string;
}

interface GroupEntry {
  readonly fd: number;
  refs: number;
}

const MAX_GUEST_MAPPINGS = 65_536;

let internalsOf: (context: IommuContext) => ContextInternals;
let openWith: (cdevPresent: boolean | undefined, request: IommuRequest, options: IommuContextOptions) => IommuContext;

/**
 * One IOMMU address space shared by every VFIO device of a VM — a legacy container (type1, type1v2 or
 * noiommu) or an iommufd with one IOAS — opened once. Devices attach to it (`VfioDevice.open(bdf, { context })`),
 * IOMMU groups are opened once per context and shared (two functions of one group can be open together), and
 * guest RAM is DMA-mapped once for all devices (`mapGuestMemory`).
 *
 * Ownership (reference counted): the code that opens a context holds one reference and gives it back with
 * `close()` (or `using`); each attached device holds one until it closes. The fds, the groups and the DMA
 * mappings are released when the last reference goes, whichever order they go in: closing the last device
 * keeps a context the VMM still holds; closing the context while devices are open keeps it alive for them
 * (no new device or mapping can be added through it then) and releases it with the last of them.
 *
 * @example
 * using context = IommuContext.open({ iommu: 'auto' });
 * using nic = VfioDevice.open('0000:01:00.0', { context });
 * context.mapGuestMemory(0n, ramHostAddress, ramSize, 'read-write');
 */
export class IommuContext implements Disposable {
  static {
    internalsOf = (context) => context.#internals();
    openWith = (cdevPresent, request, options) => IommuContext.#openWith(cdevPresent, request, options);
  }

  /** The kernel interface this context (and the devices attached to it) uses. */
  readonly syscalls: Syscalls;
  /** `'container'` (legacy VFIO container: type1/type1v2/noiommu) or `'iommufd'` (an IOAS in /dev/iommu). */
  readonly backend: 'container' | 'iommufd';
  readonly #request: IommuRequest;
  readonly #sysfs: SysfsOptions;
  readonly #fd: number;
  readonly #ioasId: number | undefined;
  readonly #groups = new Map<string, GroupEntry>();
  readonly #mappings = new Map<bigint, GuestDmaMapping>();
  #mode: IommuMode | undefined;
  #reason: string;
  #dma: DmaMapper | undefined;
  /** Whether the kernel holds #mappings now (a container forgets them when its last group leaves). */
  #applied: boolean;
  #devices = 0;
  #ownerClosed = false;
  #released = false;

  private constructor(sys: Syscalls, request: IommuRequest, sysfs: SysfsOptions, opened: OpenedBackend) {
    this.syscalls = sys;
    this.#request = request;
    this.#sysfs = sysfs;
    this.backend = opened.backend;
    this.#fd = opened.fd;
    this.#ioasId = opened.ioasId;
    this.#reason = opened.reason;
    this.#mode = opened.backend === 'iommufd' ? 'iommufd' : undefined;
    this.#dma = opened.ioasId !== undefined ? new IommufdDmaMapper(sys, opened.fd, opened.ioasId) : undefined;
    this.#applied = opened.backend === 'iommufd';
  }

  /**
   * Opens an IOMMU context: `/dev/iommu` plus one IOAS, or a `/dev/vfio/vfio` container (its IOMMU type is
   * set when the first group joins, as the kernel requires, and fixed from then on).
   * @throws VfioError `BAD_ARGUMENT`, `API_VERSION`, or the errno of the failing open/ioctl.
   * @example
   * using context = IommuContext.open();
   * using nic = VfioDevice.open('0000:01:00.0', { context });
   * using gpu = VfioDevice.open('0000:02:00.0', { context });
   * context.mapGuestMemory(0n, ramHostAddress, ramSize); // once, for both devices
   */
  static open(options: IommuContextOptions = {}): IommuContext {
    const request = options.iommu ?? 'auto';
    if (!isIommuRequest(request)) {
      throw new VfioError(`iommu must be 'auto', 'type1', 'noiommu' or 'iommufd', got ${String(request)}`, { code: 'BAD_ARGUMENT' });
    }
    return IommuContext.#openWith(undefined, request, options);
  }

  /** `cdevPresent` decides `'auto'` for a device's private context; undefined: decide from /dev. */
  static #openWith(cdevPresent: boolean | undefined, request: IommuRequest, options: IommuContextOptions): IommuContext {
    const sys = options.syscalls ?? realSyscalls();
    const sysfs = pickSysfs(options);
    const devRoot = options.devRoot ?? '/dev';
    const owned = new UndoStack();
    try {
      const useIommufd = request === 'iommufd' || (request === 'auto' && (cdevPresent ?? iommufdAvailable(devRoot)));
      const opened = useIommufd ? openIommufd(sys, devRoot, owned, request) : openContainer(sys, devRoot, owned);
      return new IommuContext(sys, request, sysfs, opened);
    } catch (error) {
      owned.unwind();
      throw error instanceof SystemError ? VfioError.fromSystem(error, 'IOMMU context: open', {}) : error;
    }
  }

  /** The IOMMU mode in force; `undefined` for a container no group has joined yet. */
  get mode(): IommuMode | undefined {
    return this.#mode;
  }

  /** Why this mode (for logs and the CLI). */
  get reason(): string {
    return this.#reason;
  }

  /** The address space's DMA mapper (devices' BAR peer-to-peer maps use it); `undefined` for noiommu or before a mode. */
  get dma(): DmaMapper | undefined {
    return this.#dma;
  }

  /** Devices attached right now. */
  get deviceCount(): number {
    return this.#devices;
  }

  /** IOMMU groups open right now (legacy container path). */
  get groups(): readonly string[] {
    return [...this.#groups.keys()];
  }

  /** Guest RAM mappings made with `mapGuestMemory`, in IOVA order. */
  get guestMappings(): readonly GuestDmaMapping[] {
    return [...this.#mappings.values()].sort(byBigint((m) => m.iova));
  }

  /** True once the owner called `close()` (the fds may live on for devices still attached). */
  get closed(): boolean {
    return this.#ownerClosed;
  }

  /**
   * DMA-maps guest RAM for every device of the context: device DMA to `iova` reaches `hostAddress` (memory
   * the VMM mapped, e.g. its guest RAM). On a container that no group has joined yet the mapping is recorded
   * and made when the first group joins (the kernel cannot map earlier); later joins need nothing.
   * @param prot `'read-write'` (default) or `'read'` (the device can only read).
   * Under noiommu nothing is programmed: devices DMA to host physical addresses, so the call only checks
   * (from /proc/self/pagemap, CAP_SYS_ADMIN) that `hostAddress` is resident, physically contiguous memory
   * whose physical address is `iova` (a VMM places guest RAM at GPA = PA; see {@link physicalExtents}).
   * @throws VfioError `BAD_ARGUMENT` (not a page-aligned, non-empty u64 range), `DMA_OVERLAP`, `TOO_MANY_MAPPINGS`,
   *   `NO_IOMMU` (noiommu and the memory is not at physical `iova`; `cause` says why), `CLOSED`, or the kernel's
   *   errno (`EEXIST`, `ENOMEM`...).
   */
  mapGuestMemory(iova: bigint, hostAddress: bigint, size: bigint, prot: DmaProtection = 'read-write'): void {
    this.#assertOpen();
    const mapping = checkGuestMapping(iova, hostAddress, size, prot, BigInt(this.syscalls.pageSize()));
    const overlap = findOverlap(this.#mappings.values(), mapping.iova, mapping.size);
    if (overlap) {
      const message = `DMA mapping ${hex(mapping.iova)}+${hex(mapping.size)} overlaps ${hex(overlap.iova)}+${hex(overlap.size)}`;
      throw new VfioError(message, { code: 'DMA_OVERLAP', iova: mapping.iova, size: mapping.size });
    }
    if (this.#mappings.size >= MAX_GUEST_MAPPINGS) {
      const details = { code: 'TOO_MANY_MAPPINGS', iova: mapping.iova, size: mapping.size };
      throw new VfioError(`more than ${MAX_GUEST_MAPPINGS} guest DMA mappings`, details);
    }
    if (this.#applied) this.#kernelMap(mapping);
    this.#mappings.set(mapping.iova, mapping);
  }

  /**
   * Undoes one `mapGuestMemory` of exactly `[iova, iova + size)`.
   * @throws VfioError `BAD_ARGUMENT`, `DMA_NOT_MAPPED` (no mapping with that iova and size), `CLOSED`, or the
   *   kernel's errno (the mapping is then kept, so the call can be retried).
   */
  unmapGuestMemory(iova: bigint, size: bigint): void {
    this.#assertOpen();
    checkRange(iova, size, BigInt(this.syscalls.pageSize()));
    const mapping = this.#mappings.get(iova);
    if (!mapping || mapping.size !== size) {
      throw new VfioError(`no guest DMA mapping of exactly ${hex(iova)}+${hex(size)}`, { code: 'DMA_NOT_MAPPED', iova, size });
    }
    if (this.#applied) this.#kernelUnmap(mapping);
    this.#mappings.delete(iova);
  }

  /**
   * Gives back the owner's reference. With no device attached everything is released now (guest mappings
   * unmapped, groups and fds closed); otherwise with the last device. Idempotent; never throws.
   */
  close(): void {
    if (this.#ownerClosed) return;
    this.#ownerClosed = true;
    this.#releaseIfUnused();
  }

  /** Same as `close()`: gives back the opener's reference (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  // ---- internals (VfioDevice) -------------------------------------------------------------

  #internals(): ContextInternals {
    return {
      request: this.#request,
      sysfs: this.#sysfs,
      retain: (bdf) => this.#retain(bdf),
      acquireGroup: (bdf, group, node, undo) => this.#acquireGroup(bdf, group, node, undo),
      bindDevice: (deviceFd) => this.#bindDevice(deviceFd),
    };
  }

  #retain(bdf: string): () => void {
    if (this.#ownerClosed || this.#released) throw new VfioError(`${bdf}: the IOMMU context is closed`, { code: 'CLOSED', bdf });
    this.#devices++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#devices--;
      this.#releaseIfUnused();
    };
  }

  #acquireGroup(bdf: string, group: string, node: { path: string; noiommu: boolean }, undo: UndoStack): number {
    if (this.backend !== 'container') {
      throw new VfioError(`${bdf}: an iommufd context takes devices by cdev, not groups`, { code: 'MODE_MISMATCH', bdf, group });
    }
    const existing = this.#groups.get(group);
    if (existing) {
      existing.refs++;
      undo.push(() => this.#releaseGroup(group));
      return existing.fd;
    }
    this.#checkGroupFits(bdf, group, node.noiommu);
    const steps = new UndoStack();
    try {
      const fd = openFd(this.syscalls, steps, node.path);
      checkViable(this.syscalls, fd, bdf, group);
      const containerArg = Buffer.alloc(4);
      containerArg.writeInt32LE(this.#fd);
      this.syscalls.ioctl(fd, 'VFIO_GROUP_SET_CONTAINER', containerArg);
      if (this.#mode === undefined) this.#setIommu(node.noiommu, { bdf, group }, steps);
      steps.release();
      this.#groups.set(group, { fd, refs: 1 });
      undo.push(() => this.#releaseGroup(group));
      return fd;
    } catch (error) {
      steps.unwind();
      throw error;
    }
  }

  #checkGroupFits(bdf: string, group: string, noiommu: boolean): void {
    checkGroupKind(bdf, group, noiommu, this.#request);
    if (this.#mode !== undefined && (this.#mode === 'noiommu') !== noiommu) {
      const kind = noiommu ? 'no-IOMMU' : 'IOMMU';
      throw new VfioError(`${bdf}: group ${group} (${kind}) cannot join a ${this.#mode} container`, { code: 'MODE_MISMATCH', bdf, group });
    }
  }

  /** First group in: choose the type, VFIO_SET_IOMMU, then make the recorded guest mappings. */
  #setIommu(noiommu: boolean, joining: { bdf: string; group: string }, steps: UndoStack): void {
    const choice = chooseIommuType(this.syscalls, this.#fd, noiommu, joining.bdf);
    this.syscalls.ioctl(this.#fd, 'VFIO_SET_IOMMU', choice.type);
    this.#mode = choice.mode;
    this.#reason = choice.reason;
    this.#dma = choice.mode === 'noiommu' ? undefined : new Type1DmaMapper(choice.mode, this.syscalls, this.#fd);
    // If a later step fails, the group's close takes the IOMMU (and any mapping) with it: forget them too.
    steps.push(() => this.#forgetIommu());
    for (const mapping of this.guestMappings) this.#kernelMap(mapping, joining);
    this.#applied = true;
  }

  #forgetIommu(): void {
    this.#mode = undefined;
    this.#dma = undefined;
    this.#applied = false;
  }

  #releaseGroup(group: string): void {
    const entry = this.#groups.get(group);
    if (!entry) return;
    if (--entry.refs > 0) return;
    this.#groups.delete(group);
    quietly(() => this.syscalls.close(entry.fd));
    // The kernel releases the container's IOMMU (and every DMA mapping) when its last group leaves.
    if (this.#groups.size === 0) this.#forgetIommu();
  }

  #bindDevice(deviceFd: number): void {
    if (this.backend !== 'iommufd' || this.#ioasId === undefined) {
      throw new VfioError('a container context takes devices by group, not cdev', { code: 'MODE_MISMATCH' });
    }
    this.syscalls.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(this.#fd));
    const attach = encodeAttachIommufdPt(this.#ioasId);
    this.syscalls.ioctl(deviceFd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', attach);
    decodeAttachIommufdPt(attach);
    // BAR DMA under iommufd needs dma-buf export (6.19+): the bound device can say whether its kernel has it.
    (this.#dma as IommufdDmaMapper).noteMmioDma(probeIommufdMmioDma(this.syscalls, deviceFd));
  }

  #kernelMap(mapping: GuestDmaMapping, joining?: { bdf: string; group: string }): void {
    if (this.#mode === 'noiommu') {
      this.#checkIdentity(mapping, joining);
      return;
    }
    try {
      this.#dma!.mapDma(mapping.iova, mapping.hostAddress, mapping.size, mapping.prot);
    } catch (error) {
      throw this.#wrap(error, 'map', mapping);
    }
  }

  #kernelUnmap(mapping: GuestDmaMapping): void {
    if (this.#mode === 'noiommu') return;
    try {
      this.#dma!.unmapDma(mapping.iova, mapping.size);
    } catch (error) {
      throw this.#wrap(error, 'unmap', mapping);
    }
  }

  #wrap(error: unknown, what: string, mapping: GuestDmaMapping): unknown {
    if (!(error instanceof SystemError)) return error;
    const context = `guest DMA ${what} ${hex(mapping.iova)}+${hex(mapping.size)}`;
    return VfioError.fromSystem(error, context, { iova: mapping.iova, size: mapping.size });
  }

  /**
   * noiommu: nothing translates device DMA, so the device reaches `hostAddress` at `iova` only if `iova` is
   * its host physical address and the range is physically contiguous (IOVA = PA, as DPDK does).
   */
  #checkIdentity(mapping: GuestDmaMapping, joining?: { bdf: string; group: string }): void {
    const details = { code: 'NO_IOMMU', iova: mapping.iova, size: mapping.size, ...joining };
    const context = `noiommu: devices DMA to host physical addresses, so ${hex(mapping.iova)}+${hex(mapping.size)} must be`
      + ` memory at that physical address`;
    let extent: PhysicalExtent;
    try {
      [extent] = physicalExtents(mapping.hostAddress, mapping.size, { syscalls: this.syscalls, maxExtents: 1 }) as [PhysicalExtent];
    } catch (error) {
      const reason = error instanceof VfioError || error instanceof SystemError ? error.message : String(error);
      throw new VfioError(`${context}: ${reason}`, details, { cause: error });
    }
    if (extent.physicalAddress !== mapping.iova) {
      throw new VfioError(`${context}, but host ${hex(mapping.hostAddress)} is at physical ${hex(extent.physicalAddress)}`, details);
    }
  }

  #assertOpen(): void {
    if (this.#ownerClosed || this.#released) throw new VfioError('the IOMMU context is closed', { code: 'CLOSED' });
  }

  #releaseIfUnused(): void {
    if (!this.#ownerClosed || this.#devices > 0 || this.#released) return;
    this.#released = true;
    if (this.#applied) for (const mapping of this.#mappings.values()) quietly(() => this.#kernelUnmap(mapping));
    this.#mappings.clear();
    for (const group of [...this.#groups.keys()]) {
      const entry = this.#groups.get(group)!;
      entry.refs = 1;
      this.#releaseGroup(group);
    }
    quietly(() => this.syscalls.close(this.#fd));
  }
}

/** A context private to one device: `'auto'` follows that device's cdev (`cdevPresent`), as before contexts. */
export function openPrivateContext(cdevPresent: boolean, request: IommuRequest, options: IommuContextOptions): IommuContext {
  return openWith(cdevPresent, request, options);
}

/** The internals of a context, for VfioDevice.open. */
export function contextInternals(context: IommuContext): ContextInternals {
  return internalsOf(context);
}

function iommufdAvailable(devRoot: string): boolean {
  return existsSync(path.join(devRoot, 'iommu')) && existsSync(path.join(devRoot, 'vfio', 'devices'));
}

function openIommufd(sys: Syscalls, devRoot: string, owned: UndoStack, request: IommuRequest): OpenedBackend {
  const fd = openFd(sys, owned, path.join(devRoot, 'iommu'));
  const alloc = encodeIoasAlloc();
  sys.ioctl(fd, 'IOMMU_IOAS_ALLOC', alloc);
  const reason = request === 'auto' ? 'iommufd (auto: VFIO cdev and /dev/iommu present)' : 'iommufd (requested)';
  return { backend: 'iommufd', fd, ioasId: decodeIoasAlloc(alloc).outIoasId, reason };
}

function openContainer(sys: Syscalls, devRoot: string, owned: UndoStack): OpenedBackend {
  const fd = openFd(sys, owned, path.join(devRoot, 'vfio', 'vfio'));
  const version = sys.ioctl(fd, 'VFIO_GET_API_VERSION');
  if (version !== VFIO_API_VERSION) {
    throw new VfioError(`VFIO API version ${version}, expected ${VFIO_API_VERSION}`, { code: 'API_VERSION' });
  }
  return { backend: 'container', fd, reason: 'container (IOMMU type set by the first group)' };
}

function openFd(sys: Syscalls, owned: UndoStack, file: string): number {
  const fd = sys.open(file, O_FLAGS.RDWR);
  owned.push(() => sys.close(fd));
  return fd;
}

function checkViable(sys: Syscalls, groupFd: number, bdf: string, group: string): void {
  const status = encodeGroupStatus();
  sys.ioctl(groupFd, 'VFIO_GROUP_GET_STATUS', status);
  if ((decodeGroupStatus(status).flags & VFIO_GROUP_FLAGS.VIABLE) === 0) {
    const message = `${bdf}: IOMMU group ${group} is not viable: every device in it must be bound to vfio-pci (or no driver)`;
    throw new VfioError(message, { code: 'GROUP_NOT_VIABLE', bdf, group });
  }
}

interface IommuTypeChoice {
  readonly mode: 'type1' | 'type1v2' | 'noiommu';
  readonly type: number;
  readonly reason: string;
}

/** The container types in order of preference, each with why it was chosen. */
const NOIOMMU_CHOICE: IommuTypeChoice = {
  mode: 'noiommu', type: VFIO_EXTENSION.NOIOMMU_IOMMU, reason: 'noiommu: the group is a no-IOMMU group (no DMA isolation)',
};
const TYPE1_CHOICES: readonly IommuTypeChoice[] = [
  { mode: 'type1v2', type: VFIO_EXTENSION.TYPE1v2_IOMMU, reason: 'type1v2 container (no VFIO cdev)' },
  { mode: 'type1', type: VFIO_EXTENSION.TYPE1_IOMMU, reason: 'type1 container (type1v2 unavailable)' },
];

function chooseIommuType(sys: Syscalls, containerFd: number, noiommu: boolean, bdf: string): IommuTypeChoice {
  const candidates = noiommu ? [NOIOMMU_CHOICE] : TYPE1_CHOICES;
  for (const candidate of candidates) {
    if (sys.ioctl(containerFd, 'VFIO_CHECK_EXTENSION', candidate.type) > 0) return candidate;
  }
  throw new VfioError(`${bdf}: the VFIO container supports no usable IOMMU type`, { code: 'NO_IOMMU_TYPE', bdf });
}

/** True for the four values `options.iommu` accepts. */
export function isIommuRequest(value: unknown): value is IommuRequest {
  return typeof value === 'string' && REQUESTS.includes(value);
}

/** The group's kind against what the caller asked for: a typed error before anything is opened. */
export function checkGroupKind(bdf: string, group: string, noiommu: boolean, request: IommuRequest): void {
  if (request === 'type1' && noiommu) {
    throw new VfioError(`${bdf}: group ${group} is a no-IOMMU group; type1 is impossible`, { code: 'MODE_UNAVAILABLE', bdf, group });
  }
  if (request === 'noiommu' && !noiommu) {
    throw new VfioError(`${bdf}: group ${group} is an IOMMU group, not no-IOMMU`, { code: 'MODE_UNAVAILABLE', bdf, group });
  }
}

/** Only the sysfs/dev roots of an options object (they are what a context remembers). */
export function pickSysfs(options: SysfsOptions): SysfsOptions {
  return {
    ...(options.sysfsRoot !== undefined && { sysfsRoot: options.sysfsRoot }),
    ...(options.devRoot !== undefined && { devRoot: options.devRoot }),
  };
}

function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // Release paths: the kernel frees the resource with the fd anyway; the caller's first error wins.
  }
}
