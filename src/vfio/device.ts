/* VfioDevice: an open VFIO PCI device (documented on the class). */
import type { Syscalls } from '../sys/syscalls.js';
import { O_FLAGS } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';
import type { DeviceDescription } from './description.js';
import type { DmaMapper, VfioDeviceHandle } from './device-handle.js';
import { VfioError } from './errors.js';
import { validateBdf } from './bdf.js';
import { UndoStack } from '../util/undo-stack.js';
import { cdevOf, groupNodeOf, iommuGroupOf, type SysfsOptions } from './sysfs.js';
import { describeDevice } from './describe.js';
import {
  IommuContext, checkGroupKind, contextInternals, isIommuRequest, openPrivateContext, pickSysfs,
  type ContextInternals, type IommuMode, type IommuRequest,
} from './iommu-context.js';
import { isKvmVfioFileRegistry, type KvmVfioFileRegistry } from './kvm-file-registry.js';

export type { IommuMode } from './iommu-context.js';

/** Options of {@link VfioDevice.open}. */
export interface VfioOpenOptions extends SysfsOptions {
  /**
   * Which kernel path to use for a private context. `'auto'` (default): iommufd, then type1v2, then type1,
   * then noiommu. With `context` it must be absent or equal to the context's own request.
   */
  iommu?: IommuRequest;
  /** The kernel interface; default `realSyscalls()` (pass a wrapper to log or inject faults). */
  syscalls?: Syscalls;
  /**
   * The VM's shared IOMMU context: the device joins its container (its group opened once and shared) or
   * binds to its IOAS, and uses its guest RAM mappings. Without it the device gets a private context.
   */
  context?: IommuContext;
  /**
   * KVM's VFIO pseudo-device (`KvmVfioDevice`): the device's group (container path) or device file (cdev
   * path, before `VFIO_DEVICE_BIND_IOMMUFD`, as the kernel requires) is added to it, and deleted on close.
   */
  kvm?: KvmVfioFileRegistry;
}

interface Opened {
  fd: number;
  mode: IommuMode;
  dma: DmaMapper | undefined;
  reason: string;
}

/**
 * `VfioDevice`: an open VFIO PCI device, by any of the kernel's paths —
 * iommufd + cdev (Linux 6.6+), a type1/type1v2 container, or a no-IOMMU container — and the fds that
 * hold it open. Devices of one VM share an {@link IommuContext} (one container or IOAS, groups opened once);
 * a device opened without one gets a private context that closes with it. A failure half-way releases
 * exactly what was acquired, newest first.
 *
 * Implements {@link VfioDeviceHandle}, the contract {@link BarMapper} and {@link PassthroughDevice} use.
 *
 * @example
 * using device = VfioDevice.open('0000:01:00.0', { iommu: 'auto' });
 * const description = device.describe();
 * console.log(device.iommuMode, device.iommuReason);
 */
export class VfioDevice implements VfioDeviceHandle, Disposable {
  readonly bdf: string;
  readonly fd: number;
  readonly syscalls: Syscalls;
  readonly dma: DmaMapper | undefined;
  readonly iommuMode: IommuMode;
  /** Why this IOMMU mode was chosen (for logs and the CLI). */
  readonly iommuReason: string;
  /** The IOMMU context the device is attached to (shared, or private to this device). */
  readonly context: IommuContext;
  readonly #owned: UndoStack;
  #closed = false;

  private constructor(bdf: string, sys: Syscalls, opened: Opened, owned: UndoStack, context: IommuContext) {
    this.bdf = bdf;
    this.syscalls = sys;
    this.fd = opened.fd;
    this.iommuMode = opened.mode;
    this.dma = opened.dma;
    this.iommuReason = opened.reason;
    this.#owned = owned;
    this.context = context;
  }

  /**
   * Opens `bdf` (bound to vfio-pci) through `options.context`, or a private context when none is given.
   * @throws VfioError `BAD_BDF`, `BAD_ARGUMENT`, `NO_IOMMU_GROUP`, `NO_GROUP_NODE`, `NO_CDEV`, `MODE_UNAVAILABLE`,
   *   `MODE_MISMATCH`, `GROUP_NOT_VIABLE`, `CLOSED` (the context was closed), or the errno of the failing call
   *   (`EBUSY`: the group or device is open elsewhere); a KvmError from the pseudo-device. Nothing stays open.
   * @example
   * using context = IommuContext.open();
   * using device = VfioDevice.open('0000:01:00.0', { context });
   */
  static open(bdf: string, options: VfioOpenOptions = {}): VfioDevice {
    validateBdf(bdf);
    checkOpenOptions(options);
    const owned = new UndoStack();
    try {
      const context = options.context ?? privateContext(bdf, options, owned);
      const internals = contextInternals(context);
      owned.push(internals.retain(bdf));
      const opened = openInContext(bdf, context, internals, options, owned);
      // A private context's owner reference goes now: the device's own reference keeps it alive.
      if (!options.context) context.close();
      return new VfioDevice(bdf, context.syscalls, opened, owned, context);
    } catch (error) {
      // Closing fds cannot meaningfully fail; the error that made us unwind is the one worth reporting.
      owned.unwind();
      throw error instanceof SystemError ? VfioError.fromSystem(error, `${bdf}: open`, { bdf }) : error;
    }
  }

  describe(): DeviceDescription {
    if (this.#closed) throw new VfioError(`${this.bdf}: device is closed`, { code: 'CLOSED', bdf: this.bdf });
    return describeDevice(this.syscalls, this.fd, this.bdf);
  }

  /** True once `close()` ran (the DMA maps went with the container or iommufd). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Closes the device fd, deletes its file from KVM's VFIO pseudo-device, and gives back its group and context
   * references (the last one closes the group, and a private context with it). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#owned.unwind();
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

function checkOpenOptions(options: VfioOpenOptions): void {
  if (typeof options !== 'object' || options === null) throw new VfioError('options must be an object', { code: 'BAD_ARGUMENT' });
  if (options.iommu !== undefined && !isIommuRequest(options.iommu)) {
    const message = `options.iommu must be 'auto', 'type1', 'noiommu' or 'iommufd', got ${String(options.iommu)}`;
    throw new VfioError(message, { code: 'BAD_ARGUMENT' });
  }
  if (options.context !== undefined && !(options.context instanceof IommuContext)) {
    throw new VfioError('options.context must be an IommuContext', { code: 'BAD_ARGUMENT' });
  }
  if (options.kvm !== undefined && !isKvmVfioFileRegistry(options.kvm)) {
    throw new VfioError('options.kvm must be a KvmVfioDevice (addFile/removeFile)', { code: 'BAD_ARGUMENT' });
  }
  if (options.context && options.syscalls !== undefined && options.syscalls !== options.context.syscalls) {
    throw new VfioError('options.syscalls differs from the context\'s: a device uses its context\'s kernel', { code: 'BAD_ARGUMENT' });
  }
  if (options.context && options.iommu !== undefined && options.iommu !== contextInternals(options.context).request) {
    const message = `options.iommu ${options.iommu} conflicts with the context's ${contextInternals(options.context).request}`;
    throw new VfioError(`${message}: pass it to IommuContext.open`, { code: 'BAD_ARGUMENT' });
  }
}

/** A context for this device alone; `'auto'` follows the device's cdev, as before contexts existed. */
function privateContext(bdf: string, options: VfioOpenOptions, owned: UndoStack): IommuContext {
  const request = options.iommu ?? 'auto';
  const cdev = request === 'iommufd' || request === 'auto' ? cdevOf(bdf, options) : undefined;
  if (request === 'iommufd' && !cdev) throw noCdev(bdf);
  // Legacy path: find the group (sysfs) before opening anything, so a device that is not set up fails first.
  if (!cdev) legacyGroupNode(bdf, request, options);
  const context = openPrivateContext(cdev !== undefined, request, options);
  owned.push(() => context.close());
  return context;
}

function openInContext(
  bdf: string, context: IommuContext, internals: ContextInternals, options: VfioOpenOptions, owned: UndoStack,
): Opened {
  const sysfs = { ...internals.sysfs, ...pickSysfs(options) };
  if (context.backend === 'iommufd') {
    const cdev = cdevOf(bdf, sysfs);
    if (!cdev) throw noCdev(bdf);
    const fd = openFd(context.syscalls, owned, cdev);
    addToKvm(options.kvm, fd, owned);
    internals.bindDevice(fd);
    return { fd, mode: 'iommufd', dma: context.dma, reason: context.reason };
  }
  const { group, node } = legacyGroupNode(bdf, internals.request, sysfs);
  const groupFd = internals.acquireGroup(bdf, group, node, owned);
  addToKvm(options.kvm, groupFd, owned);
  const fd = context.syscalls.ioctl(groupFd, 'VFIO_GROUP_GET_DEVICE_FD', Buffer.from(`${bdf}\0`));
  owned.push(() => context.syscalls.close(fd));
  return { fd, mode: context.mode!, dma: context.dma, reason: context.reason };
}

interface GroupNode {
  readonly group: string;
  readonly node: { path: string; noiommu: boolean };
}

function legacyGroupNode(bdf: string, request: IommuRequest, sysfs: SysfsOptions): GroupNode {
  const group = iommuGroupOf(bdf, sysfs);
  const node = groupNodeOf(group, sysfs);
  if (!node) {
    const message = `${bdf}: IOMMU group ${group} has no /dev/vfio node; bind the device to vfio-pci`;
    throw new VfioError(message, { code: 'NO_GROUP_NODE', bdf, group });
  }
  checkGroupKind(bdf, group, node.noiommu, request);
  return { group, node };
}

function addToKvm(kvm: KvmVfioFileRegistry | undefined, fd: number, owned: UndoStack): void {
  if (!kvm) return;
  kvm.addFile(fd);
  owned.push(() => kvm.removeFile(fd));
}

function openFd(sys: Syscalls, owned: UndoStack, path: string): number {
  const fd = sys.open(path, O_FLAGS.RDWR);
  owned.push(() => sys.close(fd));
  return fd;
}

function noCdev(bdf: string): VfioError {
  return new VfioError(`${bdf}: no VFIO cdev (needs Linux 6.6+ with CONFIG_VFIO_DEVICE_CDEV)`, { code: 'NO_CDEV', bdf });
}
