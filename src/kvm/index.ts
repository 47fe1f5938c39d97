export { KvmVm, type SlotRegion, type KvmVmOptions, type SlotRange, type AdoptOptions } from './vm.js';
export { KvmError, type KvmErrorDetails } from './errors.js';
export { SlotAllocator } from './slot-allocator.js';
export { KvmVcpu, type VcpuExit } from './vcpu.js';
export { GuestMemoryProbe, type ProbeResult, type ProbeOptions } from './probe.js';
