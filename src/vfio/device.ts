/**
 * `VfioDevice`: an open VFIO PCI device, by any of the kernel's paths —
 * iommufd + cdev (Linux 6.6+), a type1/type1v2 container, or a no-IOMMU container — and the fds that
 * hold it open. A failure half-way closes exactly what was opened, newest first.
 */
import {
  VFIO_API_VERSION, VFIO_EXTENSION, VFIO_GROUP_FLAGS, decodeAttachIommufdPt, decodeGroupStatus, decodeIoasAlloc,
  encodeAttachIommufdPt, encodeBindIommufd, encodeGroupStatus, encodeIoasAlloc,
} from '../uapi/index.js';
import { O_FLAGS, type Syscalls } from '../sys/syscalls.js';
import { realSyscalls } from '../sys/real-syscalls.js';
import { SystemError } from '../sys/system-error.js';
import type { DeviceDescription } from './description.js';
import type { DmaMapper, VfioDeviceHandle } from './device-handle.js';
import { VfioError } from './errors.js';
import { validateBdf } from './bdf.js';
import { UndoStack } from './cleanup.js';
import { cdevOf, groupNodeOf, iommuGroupOf, type SysfsOptions } from './sysfs.js';
import { describeDevice } from './describe.js';
import { IommufdDmaMapper, Type1DmaMapper } from './dma.js';
import { probeIommufdMmioDma } from './mmio-dma-support.js';

export type IommuMode = 'type1' | 'type1v2' | 'iommufd' | 'noiommu';

export interface VfioOpenOptions extends SysfsOptions {
  /** Which kernel path to use. `'auto'` (default): iommufd, then type1v2, then type1, then noiommu. */
  iommu?: 'auto' | 'type1' | 'noiommu' | 'iommufd';
  syscalls?: Syscalls;
}

interface Opened {
  fd: number;
  mode: IommuMode;
  dma: DmaMapper | undefined;
  reason: string;
}

export class VfioDevice implements VfioDeviceHandle, Disposable {
  readonly bdf: string;
  readonly fd: number;
  readonly syscalls: Syscalls;
  readonly dma: DmaMapper | undefined;
  readonly iommuMode: IommuMode;
  /** Why this IOMMU mode was chosen (for logs and the CLI). */
  readonly iommuReason: string;
  readonly #owned: UndoStack;
  #closed = false;

  private constructor(bdf: string, sys: Syscalls, opened: Opened, owned: UndoStack) {
    this.bdf = bdf;
    this.syscalls = sys;
    this.fd = opened.fd;
    this.iommuMode = opened.mode;
    this.dma = opened.dma;
    this.iommuReason = opened.reason;
    this.#owned = owned;
  }

  static open(bdf: string, options: VfioOpenOptions = {}): VfioDevice {
    validateBdf(bdf);
    const sys = options.syscalls ?? realSyscalls();
    const owned = new UndoStack();
    try {
      const opened = openByMode(bdf, sys, options, owned);
      return new VfioDevice(bdf, sys, opened, owned);
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

  /** Closes the device, group/iommufd and container fds, newest first. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#owned.unwind();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function openByMode(bdf: string, sys: Syscalls, options: VfioOpenOptions, owned: UndoStack): Opened {
  const wanted = options.iommu ?? 'auto';
  if (wanted === 'iommufd' || wanted === 'auto') {
    const cdev = cdevOf(bdf, options);
    if (cdev) return openIommufd(sys, cdev, options, owned, wanted === 'auto' ? 'auto: VFIO cdev and /dev/iommu present' : 'requested');
    if (wanted === 'iommufd') throw new VfioError(`${bdf}: no VFIO cdev (needs Linux 6.6+ with CONFIG_VFIO_DEVICE_CDEV)`, { code: 'NO_CDEV', bdf });
  }
  return openLegacy(bdf, sys, options, owned, wanted);
}

function openFd(sys: Syscalls, owned: UndoStack, path: string): number {
  const fd = sys.open(path, O_FLAGS.RDWR);
  owned.push(() => sys.close(fd));
  return fd;
}

function openIommufd(sys: Syscalls, cdev: string, options: VfioOpenOptions, owned: UndoStack, reason: string): Opened {
  const deviceFd = openFd(sys, owned, cdev);
  const iommuFd = openFd(sys, owned, `${options.devRoot ?? '/dev'}/iommu`);
  sys.ioctl(deviceFd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(iommuFd));
  const alloc = encodeIoasAlloc();
  sys.ioctl(iommuFd, 'IOMMU_IOAS_ALLOC', alloc);
  const ioasId = decodeIoasAlloc(alloc).outIoasId;
  const attach = encodeAttachIommufdPt(ioasId);
  sys.ioctl(deviceFd, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', attach);
  decodeAttachIommufdPt(attach);
  const mmioDma = probeIommufdMmioDma(sys, deviceFd);
  return { fd: deviceFd, mode: 'iommufd', dma: new IommufdDmaMapper(sys, iommuFd, ioasId, mmioDma), reason: `iommufd (${reason})` };
}

function openLegacy(bdf: string, sys: Syscalls, options: VfioOpenOptions, owned: UndoStack, wanted: 'auto' | 'type1' | 'noiommu' | 'iommufd'): Opened {
  const group = iommuGroupOf(bdf, options);
  const node = groupNodeOf(group, options);
  if (!node) throw new VfioError(`${bdf}: IOMMU group ${group} has no /dev/vfio node; bind the device to vfio-pci`, { code: 'NO_GROUP_NODE', bdf, group });
  if (wanted === 'type1' && node.noiommu) throw new VfioError(`${bdf}: group ${group} is a no-IOMMU group; type1 is impossible`, { code: 'MODE_UNAVAILABLE', bdf, group });
  if (wanted === 'noiommu' && !node.noiommu) throw new VfioError(`${bdf}: group ${group} is an IOMMU group, not no-IOMMU`, { code: 'MODE_UNAVAILABLE', bdf, group });

  const containerFd = openFd(sys, owned, `${options.devRoot ?? '/dev'}/vfio/vfio`);
  const version = sys.ioctl(containerFd, 'VFIO_GET_API_VERSION');
  if (version !== VFIO_API_VERSION) throw new VfioError(`VFIO API version ${version}, expected ${VFIO_API_VERSION}`, { code: 'API_VERSION', bdf });
  const { mode, type, reason } = chooseIommuType(sys, containerFd, node.noiommu, bdf);

  const groupFd = openFd(sys, owned, node.path);
  const status = encodeGroupStatus();
  sys.ioctl(groupFd, 'VFIO_GROUP_GET_STATUS', status);
  if ((decodeGroupStatus(status).flags & VFIO_GROUP_FLAGS.VIABLE) === 0) {
    throw new VfioError(`${bdf}: IOMMU group ${group} is not viable: every device in it must be bound to vfio-pci (or no driver)`, { code: 'GROUP_NOT_VIABLE', bdf, group });
  }
  const containerArg = Buffer.alloc(4);
  containerArg.writeInt32LE(containerFd);
  sys.ioctl(groupFd, 'VFIO_GROUP_SET_CONTAINER', containerArg);
  sys.ioctl(containerFd, 'VFIO_SET_IOMMU', type);
  const deviceFd = sys.ioctl(groupFd, 'VFIO_GROUP_GET_DEVICE_FD', Buffer.from(`${bdf}\0`));
  owned.push(() => sys.close(deviceFd));
  const dma = mode === 'noiommu' ? undefined : new Type1DmaMapper(mode, sys, containerFd);
  return { fd: deviceFd, mode, dma, reason };
}

function chooseIommuType(sys: Syscalls, containerFd: number, noiommu: boolean, bdf: string): { mode: 'type1' | 'type1v2' | 'noiommu'; type: number; reason: string } {
  const has = (extension: number): boolean => sys.ioctl(containerFd, 'VFIO_CHECK_EXTENSION', extension) > 0;
  if (noiommu) {
    if (has(VFIO_EXTENSION.NOIOMMU_IOMMU)) return { mode: 'noiommu', type: VFIO_EXTENSION.NOIOMMU_IOMMU, reason: 'noiommu: the group is a no-IOMMU group (no DMA isolation)' };
  } else {
    if (has(VFIO_EXTENSION.TYPE1v2_IOMMU)) return { mode: 'type1v2', type: VFIO_EXTENSION.TYPE1v2_IOMMU, reason: 'type1v2 container (no VFIO cdev)' };
    if (has(VFIO_EXTENSION.TYPE1_IOMMU)) return { mode: 'type1', type: VFIO_EXTENSION.TYPE1_IOMMU, reason: 'type1 container (type1v2 unavailable)' };
  }
  throw new VfioError(`${bdf}: the VFIO container supports no usable IOMMU type`, { code: 'NO_IOMMU_TYPE', bdf });
}
