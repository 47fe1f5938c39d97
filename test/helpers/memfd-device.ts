/**
 * A VfioDeviceHandle over a memfd: stands in for a device BAR on hosts without VFIO, so the mapper can be
 * exercised against the real /dev/kvm. Region 0 starts at file offset 0 of the memfd.
 */
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import type { VfioDeviceHandle } from '../../src/vfio/device-handle.js';
import type { DeviceDescription } from '../../src/vfio/description.js';

export class MemfdDevice implements VfioDeviceHandle, Disposable {
  readonly bdf = 'memfd:0';
  readonly syscalls = realSyscalls();
  readonly dma = undefined;
  readonly iommuMode = 'noiommu' as const;
  readonly fd: number;

  /** `regionSize` bytes of BAR0; the file is at least a page so a sub-page BAR can be expanded. */
  constructor(readonly regionSize: bigint) {
    this.fd = this.syscalls.memfdCreate('vfio-bars-bar0', 0);
    const page = BigInt(this.syscalls.pageSize());
    this.syscalls.ftruncate(this.fd, regionSize > page ? regionSize : page);
  }

  /** Writes a little-endian u32 into the "BAR" (through the file, not a mapping). */
  writeU32(offset: bigint, value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    this.syscalls.pwrite(this.fd, b, offset);
  }

  describe(): DeviceDescription {
    return {
      bdf: this.bdf, flags: 3, numRegions: 1, numIrqs: 0, irqs: [],
      regions: [{ index: 0, flags: 0x7, size: this.regionSize, offset: 0n, capabilities: [] }],
      bars: [{ index: 0, kind: 'memory', is64Bit: true, prefetchable: false, address: 0n }],
    };
  }

  [Symbol.dispose](): void {
    this.syscalls.close(this.fd);
  }
}
