/**
 * A VFIO device stand-in over a memfd for the real-/dev/kvm tests: BAR0 (QEMU NVMe's 16 KiB layout,
 * MSI-X table at 0x2000, PBA at 0x3000) at file offset 0 and config space at 0x10000. Every syscall is
 * the real kernel's except VFIO_DEVICE_SET_IRQS, which this object answers like vfio-pci (recording
 * each vector's eventfd), so `raise(vector)` signals the eventfd the way vfio-pci's interrupt handler does.
 */
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import type { Syscalls } from '../../src/sys/syscalls.js';
import { decodeIrqSet, VFIO_IRQ_SET, type IoctlName } from '../../src/uapi/index.js';
import type { VfioDeviceHandle } from '../../src/vfio/device-handle.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { qemuNvme } from '../helpers/profiles.js';
import { qemuNvmeConfigSpace } from '../vfio/fixtures.js';

const CONFIG_OFFSET = 0x1_0000n;

export class MemfdMsixDevice implements VfioDeviceHandle, Disposable {
  readonly bdf = 'memfd:msix';
  readonly dma = undefined;
  readonly iommuMode = 'noiommu' as const;
  readonly fd: number;
  readonly syscalls: Syscalls;
  /** Vector → eventfd, as the last VFIO_DEVICE_SET_IRQS left it. */
  readonly triggers = new Map<number, number>();
  readonly #real = realSyscalls();

  constructor() {
    const real = this.#real;
    this.fd = real.memfdCreate('vfio-bars-msix-bar0', 0);
    real.ftruncate(this.fd, CONFIG_OFFSET + 0x1000n);
    real.pwrite(this.fd, qemuNvmeConfigSpace(), CONFIG_OFFSET);
    this.syscalls = {
      pageSize: () => real.pageSize(),
      open: (path, flags) => real.open(path, flags),
      close: (fd) => real.close(fd),
      ioctl: (fd: number, request: IoctlName, arg?: Buffer | number) => (
        fd === this.fd && request === 'VFIO_DEVICE_SET_IRQS' ? this.#setIrqs(arg as Buffer) : real.ioctl(fd, request, arg)
      ),
      pread: (fd, buffer, offset) => real.pread(fd, buffer, offset),
      pwrite: (fd, buffer, offset) => real.pwrite(fd, buffer, offset),
      mmap: (fd, offset, length, prot, options) => real.mmap(fd, offset, length, prot, options),
      munmap: (mapping) => real.munmap(mapping),
      setUserMemoryRegion: (vmFd, region) => real.setUserMemoryRegion(vmFd, region),
      eventfd: (initval, flags) => real.eventfd(initval, flags),
      read: (fd, buffer) => real.read(fd, buffer),
      write: (fd, buffer) => real.write(fd, buffer),
      memfdCreate: (name, flags) => real.memfdCreate(name, flags),
      ftruncate: (fd, length) => real.ftruncate(fd, length),
    };
  }

  /** Writes a little-endian u32 into BAR0 (through the file). */
  writeU32(offset: bigint, value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    this.#real.pwrite(this.fd, b, offset);
  }

  /** The device raises MSI-X `vector`: its eventfd is signalled. */
  raise(vector: number): void {
    const fd = this.triggers.get(vector);
    if (fd === undefined) throw new Error(`vector ${vector} has no trigger`);
    this.#real.write(fd, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
  }

  describe(): DeviceDescription {
    return {
      ...qemuNvme,
      bdf: this.bdf,
      regions: [
        { index: 0, flags: 0x7, size: 0x4000n, offset: 0n, capabilities: [{ kind: 'msix-mappable', id: 3, version: 1 }] },
        { index: 7, flags: 0x3, size: 0x1000n, offset: CONFIG_OFFSET, capabilities: [] },
      ],
    };
  }

  #setIrqs(arg: Buffer): number {
    const set = decodeIrqSet(arg);
    if ((set.flags & VFIO_IRQ_SET.DATA_NONE) !== 0 && set.count === 0) this.triggers.clear();
    set.eventfds.forEach((fd, i) => (fd < 0 ? this.triggers.delete(set.start + i) : this.triggers.set(set.start + i, fd)));
    return 0;
  }

  [Symbol.dispose](): void {
    this.#real.close(this.fd);
  }
}
