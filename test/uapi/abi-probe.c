/*
 * The Linux ABI facts src/uapi encodes, taken from the installed kernel headers. Built two ways by
 * abi.test.ts: run natively (prints JSON), and compiled to assembly for aarch64 (each value appears as
 * an "@@name=value@@" string), so the arm64 layout is checked without running arm64 code.
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/vfio.h>
#include <linux/kvm.h>

#define SZ(V, t) V(sizeof_##t, sizeof(struct t))
#define OFF(V, t, f) V(offsetof_##t##_##f, offsetof(struct t, f))

/* Interrupts: VFIO_DEVICE_SET_IRQS, KVM irqchip, GSI routing, irqfd, direct MSI. */
#define IRQ(V) \
  SZ(V, vfio_irq_set) OFF(V, vfio_irq_set, flags) OFF(V, vfio_irq_set, index) OFF(V, vfio_irq_set, start) OFF(V, vfio_irq_set, count) \
  OFF(V, vfio_irq_set, data) \
  V(VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_NONE) V(VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_BOOL) \
  V(VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_EVENTFD) V(VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_MASK) \
  V(VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_ACTION_UNMASK) V(VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TRIGGER) \
  V(VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_EVENTFD) V(VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_MASKABLE) \
  V(VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_AUTOMASKED) V(VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_INFO_NORESIZE) \
  SZ(V, kvm_irq_routing) OFF(V, kvm_irq_routing, flags) OFF(V, kvm_irq_routing, entries) \
  SZ(V, kvm_irq_routing_entry) OFF(V, kvm_irq_routing_entry, type) OFF(V, kvm_irq_routing_entry, flags) OFF(V, kvm_irq_routing_entry, u) \
  SZ(V, kvm_irq_routing_msi) OFF(V, kvm_irq_routing_msi, address_hi) OFF(V, kvm_irq_routing_msi, data) OFF(V, kvm_irq_routing_msi, devid) \
  SZ(V, kvm_irq_routing_irqchip) OFF(V, kvm_irq_routing_irqchip, pin) \
  SZ(V, kvm_irqfd) OFF(V, kvm_irqfd, gsi) OFF(V, kvm_irqfd, flags) OFF(V, kvm_irqfd, resamplefd) \
  SZ(V, kvm_msi) OFF(V, kvm_msi, address_hi) OFF(V, kvm_msi, data) OFF(V, kvm_msi, flags) OFF(V, kvm_msi, devid) \
  V(KVM_CREATE_IRQCHIP, KVM_CREATE_IRQCHIP) V(KVM_SET_GSI_ROUTING, KVM_SET_GSI_ROUTING) V(KVM_IRQFD, KVM_IRQFD) \
  V(KVM_SIGNAL_MSI, KVM_SIGNAL_MSI) V(KVM_CAP_IRQCHIP, KVM_CAP_IRQCHIP) V(KVM_CAP_IRQ_ROUTING, KVM_CAP_IRQ_ROUTING) \
  V(KVM_CAP_IRQFD, KVM_CAP_IRQFD) V(KVM_CAP_SIGNAL_MSI, KVM_CAP_SIGNAL_MSI) V(KVM_CAP_MSI_DEVID, KVM_CAP_MSI_DEVID) \
  V(KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_IRQCHIP) V(KVM_IRQ_ROUTING_MSI, KVM_IRQ_ROUTING_MSI) \
  V(KVM_MSI_VALID_DEVID, KVM_MSI_VALID_DEVID) V(KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_DEASSIGN) \
  V(KVM_IRQFD_FLAG_RESAMPLE, KVM_IRQFD_FLAG_RESAMPLE)

#define COMMON(V) \
  SZ(V, vfio_group_status) OFF(V, vfio_group_status, flags) \
  SZ(V, vfio_device_info) OFF(V, vfio_device_info, flags) OFF(V, vfio_device_info, num_regions) OFF(V, vfio_device_info, num_irqs) OFF(V, vfio_device_info, cap_offset) \
  SZ(V, vfio_region_info) OFF(V, vfio_region_info, flags) OFF(V, vfio_region_info, index) OFF(V, vfio_region_info, cap_offset) OFF(V, vfio_region_info, size) OFF(V, vfio_region_info, offset) \
  SZ(V, vfio_info_cap_header) OFF(V, vfio_info_cap_header, id) OFF(V, vfio_info_cap_header, version) OFF(V, vfio_info_cap_header, next) \
  SZ(V, vfio_region_info_cap_sparse_mmap) OFF(V, vfio_region_info_cap_sparse_mmap, nr_areas) OFF(V, vfio_region_info_cap_sparse_mmap, areas) \
  SZ(V, vfio_region_sparse_mmap_area) OFF(V, vfio_region_sparse_mmap_area, size) \
  SZ(V, vfio_region_info_cap_type) OFF(V, vfio_region_info_cap_type, type) OFF(V, vfio_region_info_cap_type, subtype) \
  SZ(V, vfio_irq_info) OFF(V, vfio_irq_info, flags) OFF(V, vfio_irq_info, index) OFF(V, vfio_irq_info, count) \
  SZ(V, vfio_iommu_type1_dma_map) OFF(V, vfio_iommu_type1_dma_map, flags) OFF(V, vfio_iommu_type1_dma_map, vaddr) OFF(V, vfio_iommu_type1_dma_map, iova) OFF(V, vfio_iommu_type1_dma_map, size) \
  SZ(V, vfio_iommu_type1_dma_unmap) OFF(V, vfio_iommu_type1_dma_unmap, flags) OFF(V, vfio_iommu_type1_dma_unmap, iova) OFF(V, vfio_iommu_type1_dma_unmap, size) \
  SZ(V, kvm_userspace_memory_region) OFF(V, kvm_userspace_memory_region, flags) OFF(V, kvm_userspace_memory_region, guest_phys_addr) OFF(V, kvm_userspace_memory_region, memory_size) OFF(V, kvm_userspace_memory_region, userspace_addr) \
  SZ(V, kvm_one_reg) OFF(V, kvm_one_reg, addr) \
  OFF(V, kvm_run, immediate_exit) OFF(V, kvm_run, exit_reason) OFF(V, kvm_run, io) OFF(V, kvm_run, mmio) \
  V(VFIO_GET_API_VERSION, VFIO_GET_API_VERSION) V(VFIO_CHECK_EXTENSION, VFIO_CHECK_EXTENSION) V(VFIO_SET_IOMMU, VFIO_SET_IOMMU) \
  V(VFIO_GROUP_GET_STATUS, VFIO_GROUP_GET_STATUS) V(VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_SET_CONTAINER) V(VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER) \
  V(VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_DEVICE_FD) V(VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_INFO) V(VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_GET_REGION_INFO) \
  V(VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_IRQ_INFO) V(VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_SET_IRQS) V(VFIO_DEVICE_RESET, VFIO_DEVICE_RESET) \
  V(VFIO_IOMMU_GET_INFO, VFIO_IOMMU_GET_INFO) V(VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_MAP_DMA) V(VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_UNMAP_DMA) \
  V(KVM_GET_API_VERSION, KVM_GET_API_VERSION) V(KVM_CREATE_VM, KVM_CREATE_VM) V(KVM_CHECK_EXTENSION, KVM_CHECK_EXTENSION) \
  V(KVM_GET_VCPU_MMAP_SIZE, KVM_GET_VCPU_MMAP_SIZE) V(KVM_CREATE_VCPU, KVM_CREATE_VCPU) V(KVM_SET_USER_MEMORY_REGION, KVM_SET_USER_MEMORY_REGION) \
  V(KVM_RUN, KVM_RUN) V(KVM_GET_ONE_REG, KVM_GET_ONE_REG) V(KVM_SET_ONE_REG, KVM_SET_ONE_REG) \
  V(KVM_CREATE_DEVICE, KVM_CREATE_DEVICE) V(KVM_SET_DEVICE_ATTR, KVM_SET_DEVICE_ATTR) \
  SZ(V, vfio_device_feature) V(VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE) V(VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_MASK) \
  V(VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_GET) V(VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_FEATURE_SET) V(VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_PROBE) \
  SZ(V, kvm_create_device) OFF(V, kvm_create_device, fd) OFF(V, kvm_create_device, flags) \
  SZ(V, kvm_device_attr) OFF(V, kvm_device_attr, group) OFF(V, kvm_device_attr, attr) OFF(V, kvm_device_attr, addr) \
  V(KVM_DEV_TYPE_VFIO, KVM_DEV_TYPE_VFIO) V(KVM_CREATE_DEVICE_TEST, KVM_CREATE_DEVICE_TEST) \
  V(KVM_DEV_VFIO_GROUP, KVM_DEV_VFIO_GROUP) V(KVM_DEV_VFIO_GROUP_ADD, KVM_DEV_VFIO_GROUP_ADD) V(KVM_DEV_VFIO_GROUP_DEL, KVM_DEV_VFIO_GROUP_DEL) \
  V(VFIO_TYPE1_IOMMU, VFIO_TYPE1_IOMMU) V(VFIO_TYPE1v2_IOMMU, VFIO_TYPE1v2_IOMMU) V(VFIO_NOIOMMU_IOMMU, VFIO_NOIOMMU_IOMMU) \
  V(VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_FLAGS_VIABLE) V(VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_CONTAINER_SET) \
  V(VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_READ) V(VFIO_REGION_INFO_FLAG_WRITE, VFIO_REGION_INFO_FLAG_WRITE) \
  V(VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_MMAP) V(VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_CAPS) \
  V(VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_SPARSE_MMAP) V(VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_CAP_TYPE) \
  V(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) \
  V(VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_READ) V(VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_MAP_FLAG_WRITE) \
  V(VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX) V(VFIO_PCI_ROM_REGION_INDEX, VFIO_PCI_ROM_REGION_INDEX) \
  V(VFIO_PCI_VGA_REGION_INDEX, VFIO_PCI_VGA_REGION_INDEX) V(VFIO_PCI_NUM_REGIONS, VFIO_PCI_NUM_REGIONS) V(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX) \
  V(KVM_API_VERSION, KVM_API_VERSION) V(KVM_CAP_NR_MEMSLOTS, KVM_CAP_NR_MEMSLOTS) V(KVM_CAP_READONLY_MEM, KVM_CAP_READONLY_MEM) \
  V(KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_LOG_DIRTY_PAGES) V(KVM_MEM_READONLY, KVM_MEM_READONLY) \
  V(KVM_EXIT_IO, KVM_EXIT_IO) V(KVM_EXIT_MMIO, KVM_EXIT_MMIO) V(KVM_EXIT_HLT, KVM_EXIT_HLT) V(KVM_EXIT_SHUTDOWN, KVM_EXIT_SHUTDOWN) \
  V(KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_INTERNAL_ERROR) V(KVM_EXIT_SYSTEM_EVENT, KVM_EXIT_SYSTEM_EVENT) \
  VMM(V) IRQ(V)

/* What a VMM adds: interrupt lines, arm64 KVM devices and their attributes, the system-event exit. */
#define VMM(V) \
  SZ(V, kvm_irq_level) OFF(V, kvm_irq_level, level) V(KVM_IRQ_LINE, KVM_IRQ_LINE) \
  V(KVM_GET_DEVICE_ATTR, KVM_GET_DEVICE_ATTR) V(KVM_HAS_DEVICE_ATTR, KVM_HAS_DEVICE_ATTR) \
  V(KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_ARM_VGIC_V3) V(KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_ARM_VGIC_ITS) \
  OFF(V, kvm_run, system_event) V(offsetof_kvm_run_system_event_ndata, offsetof(struct kvm_run, system_event.ndata)) \
  V(offsetof_kvm_run_system_event_data, offsetof(struct kvm_run, system_event.data)) \
  V(KVM_SYSTEM_EVENT_SHUTDOWN, KVM_SYSTEM_EVENT_SHUTDOWN) V(KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_RESET) \
  V(KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_CRASH)

#if defined(__x86_64__)
#define ARCH(V) \
  SZ(V, kvm_regs) OFF(V, kvm_regs, rsp) OFF(V, kvm_regs, rip) OFF(V, kvm_regs, rflags) SZ(V, kvm_sregs) OFF(V, kvm_sregs, cs) OFF(V, kvm_sregs, ds) OFF(V, kvm_sregs, ss) \
  OFF(V, kvm_sregs, gdt) OFF(V, kvm_sregs, idt) OFF(V, kvm_sregs, cr0) OFF(V, kvm_sregs, cr4) OFF(V, kvm_sregs, efer) SZ(V, kvm_segment) OFF(V, kvm_segment, limit) OFF(V, kvm_segment, selector) \
  OFF(V, kvm_segment, type) OFF(V, kvm_segment, db) OFF(V, kvm_segment, g) \
  V(KVM_GET_REGS, KVM_GET_REGS) V(KVM_SET_REGS, KVM_SET_REGS) V(KVM_GET_SREGS, KVM_GET_SREGS) V(KVM_SET_SREGS, KVM_SET_SREGS)
#elif defined(__aarch64__)
#define CORE(f) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(f))
#define ARCH(V) \
  SZ(V, kvm_vcpu_init) V(KVM_ARM_VCPU_INIT, KVM_ARM_VCPU_INIT) V(KVM_ARM_PREFERRED_TARGET, KVM_ARM_PREFERRED_TARGET) \
  V(reg_x0, CORE(regs.regs[0])) V(reg_x2, CORE(regs.regs[2])) V(reg_x30, CORE(regs.regs[30])) V(reg_sp, CORE(regs.sp)) \
  V(reg_pc, CORE(regs.pc)) V(reg_pstate, CORE(regs.pstate)) \
  V(KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_POWER_OFF) V(KVM_ARM_VCPU_PSCI_0_2, KVM_ARM_VCPU_PSCI_0_2) \
  V(PSR_MODE_EL1h, PSR_MODE_EL1h) V(PSR_F_BIT, PSR_F_BIT) V(PSR_I_BIT, PSR_I_BIT) V(PSR_A_BIT, PSR_A_BIT) V(PSR_D_BIT, PSR_D_BIT) \
  V(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_ADDR) V(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_DEV_ARM_VGIC_GRP_NR_IRQS) \
  V(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_CTRL) V(KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_CTRL_INIT) \
  V(KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_DIST) V(KVM_VGIC_V3_ADDR_TYPE_REDIST, KVM_VGIC_V3_ADDR_TYPE_REDIST) \
  V(KVM_VGIC_ITS_ADDR_TYPE, KVM_VGIC_ITS_ADDR_TYPE) \
  V(KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SHIFT) V(KVM_ARM_IRQ_VCPU_SHIFT, KVM_ARM_IRQ_VCPU_SHIFT) \
  V(KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_IRQ_TYPE_SPI) V(KVM_ARM_IRQ_TYPE_PPI, KVM_ARM_IRQ_TYPE_PPI)
#endif

#define ALL(V) COMMON(V) ARCH(V)

#define PRINT(name, value) printf("%s\"%s\": \"0x%lx\"", first ? "" : ",\n", #name, (unsigned long)(value)), first = 0;
#define ASM(name, value) __asm__ volatile(".ascii \"@@" #name "=%c0@@\"" : : "i"((unsigned long)(value)));

#if defined(__aarch64__)
/* Cross builds cannot run: the values are read back from the assembly text. */
void abi_values_as_asm(void) { ALL(ASM) }
#endif

int main(void) {
  int first = 1;
  printf("{\n");
  ALL(PRINT)
  printf("\n}\n");
  return 0;
}
