/**
 * vfio-bars: map VFIO PCI device BARs into KVM guests.
 *
 * Layers: `uapi` (Linux ABI as data) → `sys` (FFI: koffi + the N-API shim) → `vfio` (discovery) →
 * `plan` (pure planning) → `kvm` (VM, slots, probe vCPU) → `map` (executor with rollback).
 *
 * ```ts
 * using device = VfioDevice.open('0000:00:01.0');
 * const plan = planBarMappings(device.describe(), { pageSize: realSyscalls().pageSize(), barAddresses: { 0: 0x80_0000_0000n } });
 * using vm = KvmVm.create();
 * using mapper = new BarMapper(device, vm);
 * mapper.map(plan);
 * ```
 * @packageDocumentation
 */
export { VfioBarsError, hex } from './errors.js';

// sys: the kernel interface
export type { Syscalls, HostMapping, MmapOptions } from './sys/syscalls.js';
export { PROT } from './sys/syscalls.js';
export { SystemError, errnoName } from './sys/system-error.js';
export { realSyscalls } from './sys/real-syscalls.js';
export { NativeShimError, type NativeShimErrorCode } from './sys/native-shim-error.js';

// vfio: opening and describing devices
export type * from './vfio/description.js';
export { regionByIndex } from './vfio/description.js';
export type { VfioDeviceHandle, DmaMapper } from './vfio/device-handle.js';
export { VfioDevice, type VfioOpenOptions, type IommuMode } from './vfio/device.js';
export type { MmioDmaUnsupported } from './vfio/mmio-dma-support.js';
export { IommuContext, type IommuContextOptions, type IommuRequest } from './vfio/iommu-context.js';
export type { GuestDmaMapping, DmaProtection } from './vfio/guest-dma.js';
export { physicalExtents, type PhysicalExtent, type PhysicalExtentsOptions } from './vfio/physical-memory.js';
export type { KvmVfioFileRegistry } from './vfio/kvm-file-registry.js';
export { MAX_DEVICE_REGIONS, MAX_DEVICE_IRQS, MAX_IRQ_VECTORS } from './vfio/describe.js';
export { VfioError, type VfioErrorDetails } from './vfio/errors.js';
export { describeDevice } from './vfio/describe.js';
export { descriptionToJSON, descriptionFromJSON } from './vfio/description-json.js';
export { parseRegionCapabilities } from './vfio/region-caps.js';
export { bindToVfioPci, iommuGroupOf, cdevOf, driverOf } from './vfio/sysfs.js';
export { normalizeBdf } from './vfio/bdf.js';
/** `VFIO_REGION_INFO_FLAG_*` bits of `RegionDescription.flags` (READ 1, WRITE 2, MMAP 4, CAPS 8). */
export { VFIO_REGION_FLAGS } from './uapi/vfio.js';

// plan: pure planning
export type * from './plan/types.js';
export { PlanError } from './plan/errors.js';
export { planBarMappings, replan } from './plan/planner.js';
export { replanBar } from './plan/replan-bar.js';
export { locateInBar, locateGpa } from './plan/locate.js';
export { checkPlanInvariants } from './plan/invariants.js';
export {
  validateDescription,
  validatePlan,
  validateBarPlacement,
  planViolations,
  DESCRIPTION_LIMITS,
  PLAN_LIMITS,
} from './plan/validate.js';
export { planToJSON, planFromJSON } from './plan/json.js';

// kvm: VM, slots, vCPU probe
export { KvmVm, type SlotRegion, type KvmVmOptions, type SlotRange, type AdoptOptions } from './kvm/vm.js';
export { KvmError, type KvmErrorDetails } from './kvm/errors.js';
export { KvmVcpu, type VcpuExit } from './kvm/vcpu.js';
export { KvmVfioDevice, type KvmVmRef } from './kvm/vfio-kvm-device.js';
export { GuestMemoryProbe, type ProbeResult, type ProbeOptions } from './kvm/probe.js';
// kvm: what a VMM needs to boot an arm64 guest (vCPU init and registers, vGICv3 + ITS, IRQ lines, system events)
export type { SystemEventKind } from './kvm/vcpu.js';
export { KvmDevice } from './kvm/device.js';
export { Arm64Gic, type Arm64GicLayout } from './kvm/vgic.js';
export { initArm64Vcpu, setArm64BootRegisters, type Arm64VcpuFeatures, type Arm64BootState } from './kvm/arm64-vcpu.js';
export { ARM64_CORE_REG, ARM64_GIC_SIZE, KVM_SYSTEM_EVENT } from './uapi/index.js';

// map: executing plans
export {
  BarMapper,
  type BarMapperOptions,
  type MappedBar,
  type MappedRegion,
  type MapperWarning,
  type MoveResult,
} from './map/bar-mapper.js';
export { hugePfnAlignment, hugePfnBlock, hugePfnPlacement, type HugePfnPlacement } from './map/huge-pfn.js';
export { MapError, type MapErrorDetails, type MapStep } from './map/errors.js';
export type { BarParking, ParkCode } from './map/parking.js';
export type { MapperLogger } from './map/logger.js';

// vfio region access (trapped accesses that reach the device)
export { RegionAccess, readRegion, writeRegion, readRegionBytes, writeRegionBytes, type AccessSize } from './vfio/region-access.js';

// guest: what the guest sees of a passed-through device (config space, MMIO dispatch, MSI-X, GSI routing)
export * from './guest/index.js';
