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
    return GuestRam.#build(vm, { flags: 0, length: size, size }, () => base);
  }

  /**
   * Guest RAM for a noiommu host: a huge-page memfd (physically contiguous, never moved), placed at guest
   * physical = its host physical address, so a device DMAs where the guest's driver says.
   * Needs huge pages reserved (`hugepages=` on the host's command line) and CAP_SYS_ADMIN (pagemap PFNs).
   */
  static createAtPhysical(vm: KvmVm, size: bigint): GuestRam {
    const huge = defaultHugePageSize();
    // hugetlbfs maps whole huge pages only (EINVAL otherwise): map them all, give the guest `size` bytes.
    const length = ((size + huge - 1n) / huge) * huge;
    return GuestRam.#build(vm, { flags: MFD_HUGETLB, length, size }, (mapping, bytes) => {
      // Fault every huge page in now: only resident memory has a physical address.
      for (let offset = 0n; offset < size; offset += huge) bytes[Number(offset)] = 0;
      const [extent] = physicalExtents(mapping.address, size, { syscalls: vm.syscalls, maxExtents: 1 });
      return extent!.physicalAddress;
    });
  }

  /** A memfd of `length` bytes mapped whole; its first `size` bytes become RAM at the address `place` picks. */
  static #build(vm: KvmVm, memory: { flags: number; length: bigint; size: bigint },
    place: (mapping: HostMapping, bytes: Uint8Array) => bigint): GuestRam {
    const sys = vm.syscalls;
    const fd = sys.memfdCreate('arm64-vmm-ram', memory.flags);
    let mapping: HostMapping;
    try {
      sys.ftruncate(fd, memory.length);
      mapping = sys.mmap(fd, 0n, memory.length, PROT.READ | PROT.WRITE);
    } finally {
      sys.close(fd);
    }
    try {
      if (!mapping.view) throw new RangeError(`guest RAM of ${hex(memory.length)} bytes has no view`);
      const base = place(mapping, new Uint8Array(mapping.view));
      const slot = vm.addSlot({ guestPhysAddr: base, memorySize: memory.size, userspaceAddr: mapping.address });
      return new GuestRam(vm, base, memory.size, mapping, slot);
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
