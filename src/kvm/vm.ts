/* KvmVm: a KVM VM handle that owns its memory slots (documented on the class). */
import { KVM_API_VERSION, KVM_CAP, KVM_MEM_FLAGS } from '../uapi/index.js';
import { O_FLAGS, type Syscalls } from '../sys/syscalls.js';
import { realSyscalls } from '../sys/real-syscalls.js';
import { hex } from '../errors.js';
import { KvmError } from './errors.js';
import { SlotAllocator } from './slot-allocator.js';
import { GrantChecker } from './grant-checker.js';

/** One KVM memory slot (the fields of `kvm_userspace_memory_region`). */
export interface SlotRegion {
  /** Guest physical address; a host-page multiple. */
  readonly guestPhysAddr: bigint;
  /** Size in bytes; a host-page multiple. */
  readonly memorySize: bigint;
  /** Host virtual address of the memory backing it (an mmap); a host-page multiple. */
  readonly userspaceAddr: bigint;
  /** Register with KVM_MEM_READONLY: guest writes exit to the VMM as MMIO. */
  readonly readonly?: boolean;
}

/** Our record of a registered slot; moves update it in place so a hot move loop allocates nothing. */
interface MutableSlot {
  guestPhysAddr: bigint;
  readonly memorySize: bigint;
  readonly userspaceAddr: bigint;
  readonly readonly: boolean;
}

/** Options of {@link KvmVm.create} (and of {@link KvmVm.adopt}). */
export interface KvmVmOptions {
  /** The kernel interface; default `realSyscalls()`. */
  syscalls?: Syscalls;
  /** Default `/dev/kvm`. */
  kvmPath?: string;
}

/** The slot ids a VMM lets the library use in a VM it owns: [first, first + count). */
export interface SlotRange {
  /** The first slot id. */
  readonly first: number;
  /** How many ids. */
  readonly count: number;
}

/** Options of {@link KvmVm.adopt}. */
export interface AdoptOptions extends KvmVmOptions {
  /** Required: the VMM keeps its own slots (RAM, ROM...) outside this range. */
  slots: SlotRange;
}

interface VmParts {
  syscalls: Syscalls;
  kvmFd: number;
  vmFd: number;
  maxMemorySlots: number;
  readonlyMem: boolean;
  slots: SlotRange;
  /** True when the VMM owns the VM fd: closing removes our slots and leaves the VM alone. */
  adopted: boolean;
}

/**
 * A KVM VM and the memory slots registered in it. Dispose it (or `close()`) to release everything: a VM it
 * created is destroyed, an adopted one keeps the VMM's slots and loses only the library's. Slot registration
 * goes through `Syscalls.setUserMemoryRegion` (the N-API shim), so u64 values reach the kernel unchanged.
 * Slot changes are safe while vCPUs run on other threads (KVM's SRCU); the object itself belongs to one thread.
 *
 * @example
 * using vm = KvmVm.adopt(vmm.vmFd, { slots: { first: 64, count: 256 } }); // in the VMM's VM
 * using own = KvmVm.create();                                              // or a VM of its own
 */
export class KvmVm implements Disposable {
  /** The VM fd. */
  readonly fd: number;
  /** The kernel interface it was made with. */
  readonly syscalls: Syscalls;
  /** KVM_CAP_NR_MEMSLOTS: how many slot ids this VM accepts. */
  readonly maxMemorySlots: number;
  /** KVM_CAP_READONLY_MEM. */
  readonly readonlyMemSupported: boolean;
  /** The slot ids this handle may use: all of them for a VM it created, the VMM's grant for an adopted one. */
  readonly slotRange: SlotRange;
  readonly #kvmFd: number;
  readonly #adopted: boolean;
  readonly #slots = new Map<number, MutableSlot>();
  readonly #ids: SlotAllocator;
  /** Adopted VMs only: proves each granted id free before its first use (see GrantChecker). */
  readonly #grant: GrantChecker | undefined;
  #closed = false;

  private constructor(parts: VmParts) {
    this.syscalls = parts.syscalls;
    this.#kvmFd = parts.kvmFd;
    this.fd = parts.vmFd;
    this.maxMemorySlots = parts.maxMemorySlots;
    this.readonlyMemSupported = parts.readonlyMem;
    this.slotRange = parts.slots;
    this.#adopted = parts.adopted;
    this.#ids = new SlotAllocator(parts.slots.count, parts.slots.first);
    this.#grant = parts.adopted ? new GrantChecker(parts.syscalls, parts.vmFd) : undefined;
  }

  /**
   * Opens /dev/kvm, checks API version 12 and creates a VM. Closes what it opened if a step fails.
   *
   * @throws KvmError `API_VERSION` for a KVM that is not version 12; SystemError for a failed open of /dev/kvm
   *   (`ENOENT`, `EACCES`) or KVM_CREATE_VM.
   * @example
   * using vm = KvmVm.create();
   * const slot = vm.addSlot({ guestPhysAddr: 0x4000_0000n, memorySize: 0x1000n, userspaceAddr: page.address });
   */
  static create(options: KvmVmOptions = {}): KvmVm {
    const syscalls = options.syscalls ?? realSyscalls();
    const kvmFd = openKvm(syscalls, options.kvmPath);
    let vmFd = -1;
    try {
      vmFd = syscalls.ioctl(kvmFd, 'KVM_CREATE_VM', 0);
      const caps = vmCapabilities(syscalls, vmFd);
      return new KvmVm({ syscalls, kvmFd, vmFd, ...caps, slots: { first: 0, count: caps.maxMemorySlots }, adopted: false });
    } catch (error) {
      if (vmFd >= 0) closeQuietly(syscalls, vmFd);
      closeQuietly(syscalls, kvmFd);
      throw error;
    }
  }

  /**
   * Works inside a VM the VMM already created, using only the slot ids it grants. Closing the handle
   * removes the slots the library registered and leaves the VM (and the VMM's own slots) alone.
   *
   * The grant is not trusted: before an id is used the first time, a side-effect-free probe asks KVM
   * whether it is free, and an id the VMM already uses is refused (`SLOT_IN_USE`) instead of being
   * moved or deleted (KVM would MOVE a slot whose host address and size happen to match).
   *
   * @throws KvmError `BAD_ARGUMENT` for an fd that is not a non-negative integer or a missing grant,
   *   `BAD_SLOT_RANGE` for a grant outside the VM's slots, or the errno of a failed open/ioctl.
   * @example
   * const vm = KvmVm.adopt(vmmVmFd, { slots: { first: 100, count: 64 } });
   */
  static adopt(vmFd: number, options: AdoptOptions): KvmVm {
    if (typeof vmFd !== 'number' || !Number.isInteger(vmFd) || vmFd < 0 || vmFd > 0x7fff_ffff) {
      throw new KvmError(`VM fd must be a non-negative integer, got ${String(vmFd)}`, { code: 'BAD_ARGUMENT' });
    }
    if (typeof options !== 'object' || options === null || typeof options.slots !== 'object' || options.slots === null) {
      throw new KvmError('adopt needs options.slots: the slot ids the VMM grants', { code: 'BAD_ARGUMENT' });
    }
    const syscalls = options.syscalls ?? realSyscalls();
    const kvmFd = openKvm(syscalls, options.kvmPath);
    try {
      const caps = vmCapabilities(syscalls, vmFd);
      const { first, count } = options.slots;
      if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 || first + count > caps.maxMemorySlots) {
        throw new KvmError(`slot range ${first}+${count} does not fit the VM's ${caps.maxMemorySlots} slots`, { code: 'BAD_SLOT_RANGE' });
      }
      return new KvmVm({ syscalls, kvmFd, vmFd, ...caps, slots: { first, count }, adopted: true });
    } catch (error) {
      closeQuietly(syscalls, kvmFd);
      throw error;
    }
  }

  /** The /dev/kvm fd (for KVM_GET_VCPU_MMAP_SIZE and other system ioctls). */
  get kvmFd(): number {
    return this.#kvmFd;
  }

  /** True once `close()` ran: the VM's slots (ours) are gone, every slot call throws `CLOSED`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of registered slots. */
  get slotCount(): number {
    return this.#slots.size;
  }

  /** The slot registered under `id`, or undefined. */
  slot(id: number): Readonly<SlotRegion> | undefined {
    return this.#slots.get(id);
  }

  /**
   * Registers a slot under a fresh (or recycled) id and returns the id. On failure the id is released.
   *
   * @throws KvmError `BAD_ARGUMENT` (not u64 bigints, size 0), `SLOTS_EXHAUSTED`, `SLOT_IN_USE` (adopted VM:
   *   the granted id is the VMM's), `CLOSED`, or KVM's errno (EINVAL unaligned, EEXIST overlap).
   */
  addSlot(region: SlotRegion): number {
    this.#assertOpen();
    checkRegion(region);
    const id = this.#ids.allocate();
    if (id === undefined) {
      const where = `gpa ${hex(region.guestPhysAddr)} size ${hex(region.memorySize)}`;
      throw new KvmError(`no free KVM memory slot (all ${this.slotRange.count} in use) for ${where}`, {
        code: 'SLOTS_EXHAUSTED', guestPhysAddr: region.guestPhysAddr, memorySize: region.memorySize, userspaceAddr: region.userspaceAddr,
      });
    }
    try {
      this.#grant?.assertFree(id, region);
      this.#set(id, region.guestPhysAddr, region);
    } catch (error) {
      this.#ids.release(id);
      throw error;
    }
    this.#slots.set(
      id,
      {
        guestPhysAddr: region.guestPhysAddr,
        memorySize: region.memorySize,
        userspaceAddr: region.userspaceAddr,
        readonly: region.readonly ?? false,
      },
    );
    return id;
  }

  /**
   * Moves a slot to a new guest address, keeping its id, size and host memory (KVM performs a MOVE).
   * On failure the slot stays registered where it was.
   */
  moveSlot(id: number, guestPhysAddr: bigint): void {
    this.#assertOpen();
    checkU64Arg('guestPhysAddr', guestPhysAddr);
    const region = this.#registered(id);
    this.#set(id, guestPhysAddr, region);
    region.guestPhysAddr = guestPhysAddr;
  }

  /** Deletes a slot (memory_size 0) and frees its id. */
  removeSlot(id: number): void {
    this.#assertOpen();
    const region = this.#registered(id);
    this.#set(id, region.guestPhysAddr, region, 0n);
    this.#slots.delete(id);
    this.#ids.release(id);
  }

  /**
   * A created VM is closed (the kernel drops every slot with it); an adopted one gets back exactly the
   * slots this handle registered, and the VMM keeps its VM. /dev/kvm is closed either way. Idempotent.
   *
   * @throws KvmError (adopted VM only) when KVM refuses to delete one of our slots; the handle then stays
   *   open with that slot recorded, and `close()` may be called again.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#adopted) this.#giveBackSlots();
    this.#closed = true;
    this.#slots.clear();
    if (!this.#adopted) closeQuietly(this.syscalls, this.fd);
    closeQuietly(this.syscalls, this.#kvmFd);
  }

  /**
   * Adopted VM: deletes every slot (and probe slot) this handle registered. If KVM refuses one, throws
   * with the handle still open and those slots still recorded, so calling `close()` again retries them:
   * they live in the VMM's VM, and pretending they are gone would leak them there.
   */
  #giveBackSlots(): void {
    const errors: unknown[] = [];
    for (const id of [...this.#slots.keys()]) {
      try {
        this.removeSlot(id);
      } catch (error) {
        errors.push(error);
      }
    }
    try {
      if (errors.length === 0) this.#grant?.close();
    } catch (error) {
      errors.push(error);
    }
    if (errors.length > 0) throw errors[0];
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #set(id: number, guestPhysAddr: bigint, region: SlotRegion, memorySize = region.memorySize): void {
    const flags = region.readonly ? KVM_MEM_FLAGS.READONLY : 0;
    try {
      this.syscalls.setUserMemoryRegion(this.fd, { slot: id, flags, guestPhysAddr, memorySize, userspaceAddr: region.userspaceAddr });
    } catch (error) {
      throw KvmError.fromSlotFailure(error, id, guestPhysAddr, memorySize, region.userspaceAddr);
    }
  }

  #registered(id: number): MutableSlot {
    const region = this.#slots.get(id);
    if (!region) throw new KvmError(`KVM memory slot ${id} is not registered`, { code: 'NO_SUCH_SLOT', slot: id });
    return region;
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvmError('KVM VM is closed', { code: 'CLOSED' });
  }
}

/** A slot request is u64 bigints and a non-zero size (size 0 would be KVM's delete). */
function checkRegion(region: SlotRegion): void {
  if (typeof region !== 'object' || region === null) throw new KvmError('slot region must be an object', { code: 'BAD_ARGUMENT' });
  checkU64Arg('guestPhysAddr', region.guestPhysAddr);
  checkU64Arg('memorySize', region.memorySize);
  checkU64Arg('userspaceAddr', region.userspaceAddr);
  if (region.memorySize === 0n) throw new KvmError('slot size 0 would delete a slot; use removeSlot', { code: 'BAD_ARGUMENT' });
}

/** Hoisted: `1n << 64n` in the condition would compute a new BigInt on every slot call (~10 ns each). */
const U64_LIMIT = 1n << 64n;

function checkU64Arg(name: string, value: unknown): void {
  if (typeof value !== 'bigint' || value < 0n || value >= U64_LIMIT) {
    throw new KvmError(
      `${name} must be a u64 bigint, got ${typeof value === 'bigint' ? hex(value) : typeof value}`,
      { code: 'BAD_ARGUMENT' },
    );
  }
}

function openKvm(syscalls: Syscalls, path = '/dev/kvm'): number {
  const kvmFd = syscalls.open(path, O_FLAGS.RDWR);
  try {
    const version = syscalls.ioctl(kvmFd, 'KVM_GET_API_VERSION');
    if (version !== KVM_API_VERSION) {
      throw new KvmError(`KVM API version ${version}, expected ${KVM_API_VERSION}`, { code: 'API_VERSION', ioctl: 'KVM_GET_API_VERSION' });
    }
    return kvmFd;
  } catch (error) {
    closeQuietly(syscalls, kvmFd);
    throw error;
  }
}

/** Both capabilities are VM-wide; asking the VM fd gives the per-VM answer where it differs. */
function vmCapabilities(syscalls: Syscalls, vmFd: number): { maxMemorySlots: number; readonlyMem: boolean } {
  return {
    maxMemorySlots: syscalls.ioctl(vmFd, 'KVM_CHECK_EXTENSION', KVM_CAP.NR_MEMSLOTS),
    readonlyMem: syscalls.ioctl(vmFd, 'KVM_CHECK_EXTENSION', KVM_CAP.READONLY_MEM) > 0,
  };
}

/** close() for cleanup paths, where a second error must not hide the first. */
function closeQuietly(syscalls: Syscalls, fd: number): void {
  try {
    syscalls.close(fd);
  } catch {
    // Nothing useful to do: the fd is gone either way (close never leaves it open on Linux).
  }
}
