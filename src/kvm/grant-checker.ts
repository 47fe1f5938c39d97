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
  /** Probe slots whose delete failed, by id: deleted before the id is probed again, and on close. */
  readonly #strays = new Map<number, bigint>();

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
    this.#deleteStray(id);
    const aligned = [region.guestPhysAddr, region.memorySize, region.userspaceAddr].every((v) => v % this.#page === 0n);
    if (!aligned) return;
    let answer = this.#ask(id, region.guestPhysAddr);
    if (answer === 'in-use-or-invalid') answer = this.#ask(id, 0n);
    if (answer === 'in-use-or-invalid') {
      throw new KvmError(`KVM memory slot ${id} of the grant is in use by the VMM: the grant overlaps its slots (left untouched)`, {
        code: 'SLOT_IN_USE', slot: id, ioctl: 'KVM_SET_USER_MEMORY_REGION', guestPhysAddr: region.guestPhysAddr,
        memorySize: region.memorySize,
      });
    }
    this.#verified.add(id);
  }

  /** Releases the probe page. */
  close(): void {
    const errors: unknown[] = [];
    for (const id of [...this.#strays.keys()]) {
      try {
        this.#deleteStray(id);
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors[0];
    const probe = this.#probe;
    if (!probe) return;
    this.#syscalls.munmap(probe.mapping); // on failure the probe stays recorded: close() again retries
    this.#probe = undefined;
    try {
      this.#syscalls.close(probe.fd);
    } catch {
      // Linux releases the fd even when close reports an error; there is nothing to retry.
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
    this.#strays.set(id, gpa);
    this.#deleteStray(id);
    return 'free';
  }

  /** Deletes the probe slot left under `id` (if any); on failure it stays recorded for the next try. */
  #deleteStray(id: number): void {
    const gpa = this.#strays.get(id);
    if (gpa === undefined) return;
    const hva = this.#probe!.mapping.address;
    try {
      this.#syscalls.setUserMemoryRegion(this.#vmFd, { slot: id, flags: 0, guestPhysAddr: gpa, memorySize: 0n, userspaceAddr: hva });
    } catch (error) {
      throw KvmError.fromSlotFailure(error, id, gpa, 0n, hva);
    }
    this.#strays.delete(id);
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
