/**
 * `GrantChecker`: proves, without side effects on the VMM's slots, that a granted slot id is free before
 * an adopted `KvmVm` uses it the first time. KVM has no "get slot" ioctl, and KVM_SET_USER_MEMORY_REGION on
 * an id in use does not fail when the host address and size match: it MOVEs the slot (or does nothing
 * and lets a later delete remove it). That is how an overlapping grant moved, then deleted, a VMM's RAM.
 *
 * The probe registers one page of a private mapping only this object knows (so no VMM slot can have the
 * same host address) under the id:
 * * id in use: KVM refuses to change the host address or size in place (EINVAL), nothing changes;
 * * id free: a CREATE at the requested GPA, which either overlaps (EEXIST, nothing changes) or succeeds
 *   and is deleted at once (the slot existed for two ioctls, at the GPA the caller is about to map).
 * An EINVAL could also mean the GPA is beyond the VM's limit, so it is confirmed at GPA 0, always valid.
 */
import { constants } from 'node:os';
import { PROT, type HostMapping, type Syscalls } from '../sys/syscalls.js';
import { SystemError } from '../sys/system-error.js';
import { KvmError } from './errors.js';
import type { SlotRegion } from './vm.js';

const { EINVAL, EEXIST } = constants.errno;

type ProbeAnswer = 'free' | 'in-use-or-invalid';

export class GrantChecker {
  readonly #syscalls: Syscalls;
  readonly #vmFd: number;
  readonly #page: bigint;
  /** Ids proven free once; ours from then on (the VMM promised not to take granted ids). */
  readonly #verified = new Set<number>();
  #probe: { fd: number; mapping: HostMapping } | undefined;

  constructor(syscalls: Syscalls, vmFd: number) {
    this.#syscalls = syscalls;
    this.#vmFd = vmFd;
    this.#page = BigInt(syscalls.pageSize());
  }

  /**
   * Throws KvmError `SLOT_IN_USE` when `id` holds a VMM slot. Requests KVM itself rejects before looking
   * at the id (unaligned values) are not probed: they cannot touch an existing slot.
   */
  assertFree(id: number, region: SlotRegion): void {
    if (this.#verified.has(id)) return;
    const aligned = [region.guestPhysAddr, region.memorySize, region.userspaceAddr].every((v) => v % this.#page === 0n);
    if (!aligned) return;
    let answer = this.#ask(id, region.guestPhysAddr);
    if (answer === 'in-use-or-invalid') answer = this.#ask(id, 0n);
    if (answer === 'in-use-or-invalid') {
      throw new KvmError(`KVM memory slot ${id} of the grant is in use by the VMM: the grant overlaps its slots (left untouched)`, {
        code: 'SLOT_IN_USE', slot: id, ioctl: 'KVM_SET_USER_MEMORY_REGION', guestPhysAddr: region.guestPhysAddr, memorySize: region.memorySize,
      });
    }
    this.#verified.add(id);
  }

  /** Releases the probe page. */
  close(): void {
    const probe = this.#probe;
    if (!probe) return;
    this.#probe = undefined;
    try {
      this.#syscalls.munmap(probe.mapping);
    } finally {
      this.#syscalls.close(probe.fd);
    }
  }

  #ask(id: number, gpa: bigint): ProbeAnswer {
    const hva = this.#probePage();
    const region = { slot: id, flags: 0, guestPhysAddr: gpa, memorySize: this.#page, userspaceAddr: hva };
    try {
      this.#syscalls.setUserMemoryRegion(this.#vmFd, region);
    } catch (error) {
      if (error instanceof SystemError && error.errno === EEXIST) return 'free';
      if (error instanceof SystemError && error.errno === EINVAL) return 'in-use-or-invalid';
      throw KvmError.fromSlotFailure(error, id, gpa, this.#page, hva);
    }
    // Created: the id was free. Take the probe slot away again before anyone can see it.
    try {
      this.#syscalls.setUserMemoryRegion(this.#vmFd, { ...region, memorySize: 0n });
    } catch (error) {
      throw KvmError.fromSlotFailure(error, id, gpa, 0n, hva);
    }
    return 'free';
  }

  /** One page of a memfd only this object maps: no VMM slot can name this host address. */
  #probePage(): bigint {
    if (this.#probe) return this.#probe.mapping.address;
    const fd = this.#syscalls.memfdCreate('vfio-bars-slot-probe', 0);
    try {
      this.#syscalls.ftruncate(fd, this.#page);
      this.#probe = { fd, mapping: this.#syscalls.mmap(fd, 0n, this.#page, PROT.READ) };
    } catch (error) {
      try {
        this.#syscalls.close(fd);
      } catch {
        // The first error is the one worth reporting; the fd is gone either way.
      }
      throw error;
    }
    return this.#probe.mapping.address;
  }
}
