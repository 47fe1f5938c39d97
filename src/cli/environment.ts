/**
 * What the CLI needs from the machine, as one object: how to open a device, where sysfs is, the host page
 * size, where progress goes. `defaultEnvironment()` is the real machine; tests pass stand-ins (a memfd device,
 * a fake sysfs tree, a pretend TTY) without touching the commands.
 */
import { VfioDevice, driverOf, realSyscalls, type VfioDeviceHandle } from '../index.js';
import { Progress, type ProgressStream } from './progress.js';

/** An open device as the commands use it: the mapper's handle plus an end of life. */
export interface CliDevice extends VfioDeviceHandle, Disposable {
  /** Why this IOMMU mode was chosen (VfioDevice has it), for `inspect`. */
  readonly iommuReason?: string;
}

/** `--iommu`: which kernel path `VfioDevice.open` takes (its `iommu` option). */
export type IommuChoice = 'auto' | 'iommufd' | 'type1' | 'noiommu';

export interface CliEnvironment {
  /** Opens `bdf` (already normalised and checked to be bound to vfio-pci). */
  openDevice(bdf: string, iommu: IommuChoice): CliDevice;
  /**
   * The driver bound to `bdf` (`driverOf` semantics: `null` no such device, `undefined` no driver). The
   * commands refuse a device that another driver holds, naming that driver.
   */
  driverOf(bdf: string): string | undefined | null;
  /** This host's page size in bytes. */
  hostPageSize(): bigint;
  /** Progress of long operations (silent unless the stream is a TTY). */
  readonly progress: Progress;
}

/** The real machine: VfioDevice.open, /sys, sysconf, and progress on stderr when it is a terminal. */
export function defaultEnvironment(stderr: ProgressStream = process.stderr): CliEnvironment {
  return {
    openDevice: (bdf, iommu) => VfioDevice.open(bdf, { iommu }),
    driverOf: (bdf) => driverOf(bdf),
    hostPageSize: () => BigInt(realSyscalls().pageSize()),
    progress: new Progress(stderr),
  };
}
