/**
 * Guest RAM: one memfd-backed mapping registered as one KVM slot, plus the arm64 boot protocol's
 * placement of the kernel Image, the initramfs and the device tree inside it.
 */
import { readFileSync } from 'node:fs';
import { PROT, hex, physicalExtents, type HostMapping, type KvmVm } from 'vfio-bars';

const ARM64_IMAGE_MAGIC = 0x644d_5241; // "ARM\x64" at offset 56 of the Image header
const MiB = 0x10_0000n;
/** memfd_create(2) flag: back the file by huge pages of the default size. */
const MFD_HUGETLB = 0x4;

export class GuestRam implements Disposable {
  readonly base: bigint;
  readonly size: bigint;
  readonly slot: number;
  readonly #vm: KvmVm;
  readonly #mapping: HostMapping;
  readonly #bytes: Uint8Array;

  private constructor(vm: KvmVm, base: bigint, size: bigint, mapping: HostMapping, slot: number) {
    this.#vm = vm;
    this.base = base;
    this.size = size;
    this.#mapping = mapping;
    this.slot = slot;
    this.#bytes = new Uint8Array(mapping.view!);
  }

  /** Maps `size` bytes of a memfd and registers them at guest physical `base`. */
  static create(vm: KvmVm, base: bigint, size: bigint): GuestRam {
    const sys = vm.syscalls;
    const fd = sys.memfdCreate('arm64-vmm-ram', 0);
    let mapping: HostMapping;
    try {
      sys.ftruncate(fd, size);
      mapping = sys.mmap(fd, 0n, size, PROT.READ | PROT.WRITE);
    } finally {
      sys.close(fd);
    }
    try {
      if (!mapping.view) throw new RangeError(`guest RAM of ${hex(size)} bytes has no view`);
      const slot = vm.addSlot({ guestPhysAddr: base, memorySize: size, userspaceAddr: mapping.address });
      return new GuestRam(vm, base, size, mapping, slot);
    } catch (error) {
      sys.munmap(mapping);
      throw error;
    }
  }

  /**
   * Guest RAM for a noiommu host: a huge-page memfd (physically contiguous, never moved), placed at guest
   * physical = its host physical address, so a device DMAs where the guest's driver says.
   * Needs huge pages reserved (`hugepages=` on the host's command line) and CAP_SYS_ADMIN (pagemap PFNs).
   */
  static createAtPhysical(vm: KvmVm, size: bigint): GuestRam {
    const sys = vm.syscalls;
    const huge = defaultHugePageSize();
    const fd = sys.memfdCreate('arm64-vmm-ram', MFD_HUGETLB);
    // hugetlbfs maps whole huge pages only (EINVAL otherwise): map them all, give the guest `size` bytes.
    const length = ((size + huge - 1n) / huge) * huge;
    let mapping: HostMapping;
    try {
      sys.ftruncate(fd, length);
      mapping = sys.mmap(fd, 0n, length, PROT.READ | PROT.WRITE);
    } finally {
      sys.close(fd);
    }
    try {
      if (!mapping.view) throw new RangeError(`guest RAM of ${hex(size)} bytes has no view`);
      // Fault every huge page in now: only resident memory has a physical address.
      const bytes = new Uint8Array(mapping.view);
      for (let offset = 0n; offset < size; offset += huge) bytes[Number(offset)] = 0;
      const [extent] = physicalExtents(mapping.address, size, { syscalls: sys, maxExtents: 1 });
      const slot = vm.addSlot({ guestPhysAddr: extent!.physicalAddress, memorySize: size, userspaceAddr: mapping.address });
      return new GuestRam(vm, extent!.physicalAddress, size, mapping, slot);
    } catch (error) {
      sys.munmap(mapping);
      throw error;
    }
  }

  /** Host address of the RAM (for the IOMMU: devices DMA to guest RAM at IOVA = GPA). */
  get hostAddress(): bigint {
    return this.#mapping.address;
  }

  /** Copies `data` to guest physical `gpa`. */
  write(gpa: bigint, data: Uint8Array): void {
    if (gpa < this.base || gpa + BigInt(data.length) > this.base + this.size) {
      throw new RangeError(`${hex(gpa)}+${hex(BigInt(data.length))} is outside guest RAM`);
    }
    this.#bytes.set(data, Number(gpa - this.base));
  }

  close(): void {
    this.#vm.removeSlot(this.slot);
    this.#vm.syscalls.munmap(this.#mapping);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export interface BootLayout {
  readonly kernel: bigint;
  readonly kernelEnd: bigint;
  readonly initrd?: { readonly start: bigint; readonly end: bigint };
  readonly deviceTree: bigint;
}

/**
 * Where the Image, the initramfs and the device tree go (Documentation/arm64/booting.rst): the Image at
 * `text_offset` above a 2 MiB-aligned base, the device tree in the last 2 MiB of RAM, the initramfs
 * just below it.
 */
export function planBootLayout(ram: { base: bigint; size: bigint }, image: Buffer, initrdSize: number | undefined): BootLayout {
  if (image.length < 64 || image.readUInt32LE(56) !== ARM64_IMAGE_MAGIC) throw new Error(
    'kernel is not an arm64 Image (no ARM\\x64 magic)'
  );
  const textOffset = image.readBigUInt64LE(8);
  const imageSize = image.readBigUInt64LE(16);
  const kernel = ram.base + textOffset;
  const kernelEnd = kernel + (imageSize > BigInt(image.length) ? imageSize : BigInt(image.length));
  const deviceTree = ram.base + ram.size - 2n * MiB;
  let initrd: BootLayout['initrd'];
  if (initrdSize !== undefined) {
    const start = (deviceTree - BigInt(initrdSize)) & ~0xfffn;
    initrd = { start, end: start + BigInt(initrdSize) };
    if (start < kernelEnd) throw new RangeError(
      `RAM too small: initramfs at ${hex(start)} would overlap the kernel (ends ${hex(kernelEnd)})`
    );
  }
  return { kernel, kernelEnd, deviceTree, ...(initrd ? { initrd } : {}) };
}

/** The host's default huge page size (`Hugepagesize:` of /proc/meminfo). */
function defaultHugePageSize(): bigint {
  const line = /^Hugepagesize:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'latin1'));
  if (!line) throw new RangeError('this host has no huge pages (no Hugepagesize in /proc/meminfo)');
  return BigInt(line[1]!) * 1024n;
}
