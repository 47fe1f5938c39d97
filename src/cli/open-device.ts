/** Opening the device a command names, after checking in sysfs that vfio-pci (or a vfio variant driver) holds it. */
import { VfioError } from '../index.js';
import type { CliDevice, CliEnvironment, IommuChoice } from './environment.js';

/** vfio-pci and its variant drivers (mlx5_vfio_pci, hisi_acc_vfio_pci, ...) all serve the VFIO uAPI. */
function isVfioDriver(driver: string): boolean {
  return driver === 'vfio-pci' || /vfio/.test(driver);
}

function bindHint(bdf: string): string {
  return `bind it to vfio-pci first (e.g. driverctl set-override ${bdf} vfio-pci, or bindToVfioPci() from the library)`;
}

/**
 * Checks the driver of `bdf`, then opens it. The driver check turns "no IOMMU group" into what the operator
 * needs to know: which driver holds the device.
 * @throws {VfioError} `NO_SUCH_DEVICE`, `NO_DRIVER` or `WRONG_DRIVER` (naming the driver); what opening throws.
 */
export function openVfioDevice(env: CliEnvironment, bdf: string, iommu: IommuChoice): CliDevice {
  const driver = env.driverOf(bdf);
  if (driver === null) {
    throw new VfioError(`no PCI device ${bdf} on this host (not in /sys/bus/pci/devices)`, { code: 'NO_SUCH_DEVICE', bdf });
  }
  if (driver === undefined) throw new VfioError(`${bdf} is bound to no driver: ${bindHint(bdf)}`, { code: 'NO_DRIVER', bdf });
  if (!isVfioDriver(driver)) {
    throw new VfioError(`${bdf} is bound to the ${driver} driver, not vfio-pci: ${bindHint(bdf)}`, { code: 'WRONG_DRIVER', bdf });
  }
  env.progress.step(`opening ${bdf} (iommu ${iommu})`);
  return env.openDevice(bdf, iommu);
}
