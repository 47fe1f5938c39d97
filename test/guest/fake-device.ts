/** A VfioDeviceHandle on the fake kernel (the cdev node gives a device fd), for guest-view tests. */
import type { VfioDeviceHandle } from '../../src/vfio/device-handle.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { encodeBindIommufd } from '../../src/uapi/index.js';

export interface FakeDevice {
  readonly kernel: FakeKernel;
  readonly handle: VfioDeviceHandle & { close(): void };
}

export function fakeDevice(
  description: DeviceDescription,
  config: Buffer,
  pageSize = 4096,
  kernel = new FakeKernel({ pageSize, device: description, config }),
): FakeDevice {
  const fd = kernel.open('/dev/vfio/devices/vfio0', 2);
  // A cdev fd answers nothing but BIND_IOMMUFD until bound (as Linux does); the device keeps the iommufd alive.
  const iommuFd = kernel.open('/dev/iommu', 2);
  kernel.ioctl(fd, 'VFIO_DEVICE_BIND_IOMMUFD', encodeBindIommufd(iommuFd));
  kernel.close(iommuFd);
  const handle = {
    bdf: description.bdf, fd, syscalls: kernel, dma: undefined, iommuMode: 'noiommu' as const,
    describe: () => description,
    close: () => kernel.close(fd),
  };
  return { kernel, handle };
}
