/**
 * vfio-bars: map VFIO PCI device BARs into KVM guests.
 *
 * Layers (see README): uapi (Linux ABI as data) → sys (FFI) → vfio (discovery) → plan (pure) →
 * kvm (VM and slots) → map (executor with rollback).
 * @packageDocumentation
 */
export { VfioBarsError, hex } from './errors.js';
export type * from './vfio/description.js';
export type * from './plan/types.js';
export type { Syscalls, HostMapping, MmapOptions } from './sys/syscalls.js';
export { SystemError, errnoName } from './sys/system-error.js';
