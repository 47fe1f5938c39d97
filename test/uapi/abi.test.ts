/**
 * src/uapi against the real kernel headers: <linux/vfio.h> and <linux/kvm.h> for x86-64 (compiled and run)
 * and for aarch64 (cross-compiled to assembly, values read back from it). Every number src/uapi encodes
 * — struct sizes, field offsets, ioctl numbers, flags, register ids — must match what C sees.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ARM64_CORE_REG, ARM64_PSTATE, IOCTL, KVM_ARM_IRQ, KVM_ARM_VCPU_FEATURE, KVM_DEV_ARM_VGIC, KVM_DEV_TYPE_ARM, KVM_SYSTEM_EVENT,
  KVM_API_VERSION, KVM_CAP, KVM_CREATE_DEVICE_TEST, KVM_DEV_TYPE, KVM_DEV_VFIO, KVM_EXIT, KVM_MEM_FLAGS, KVM_SIZEOF, SIZEOF, VFIO_DMA_MAP_FLAGS, VFIO_EXTENSION,
  KVM_IRQ_CAP, KVM_IRQ_ROUTING_TYPE, KVM_IRQ_SIZEOF, KVM_IRQFD_FLAGS, KVM_MSI_VALID_DEVID, VFIO_IRQ_FLAGS, VFIO_IRQ_SET, VFIO_IRQ_SET_SIZEOF,
  SIZEOF_VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_FLAGS, VFIO_GROUP_FLAGS, VFIO_PCI_IRQ, VFIO_PCI_NUM_REGIONS, VFIO_PCI_REGION, VFIO_REGION_CAP, VFIO_REGION_FLAGS, X86_REGS, X86_SEGMENT, X86_SREGS,
} from '../../src/uapi/index.js';

const PROBE = path.join(import.meta.dirname, 'abi-probe.c');
const work = mkdtempSync(path.join(tmpdir(), 'vfio-bars-abi-'));

/** What src/uapi says, under the names the probe prints. */
const COMMON: Record<string, number | bigint> = {
  sizeof_vfio_group_status: SIZEOF.vfio_group_status,
  offsetof_vfio_group_status_flags: 4,
  sizeof_vfio_device_info: SIZEOF.vfio_device_info,
  offsetof_vfio_device_info_flags: 4,
  offsetof_vfio_device_info_num_regions: 8,
  offsetof_vfio_device_info_num_irqs: 12,
  offsetof_vfio_device_info_cap_offset: 16,
  sizeof_vfio_region_info: SIZEOF.vfio_region_info,
  offsetof_vfio_region_info_flags: 4,
  offsetof_vfio_region_info_index: 8,
  offsetof_vfio_region_info_cap_offset: 12,
  offsetof_vfio_region_info_size: 16,
  offsetof_vfio_region_info_offset: 24,
  sizeof_vfio_info_cap_header: SIZEOF.vfio_info_cap_header,
  offsetof_vfio_info_cap_header_id: 0,
  offsetof_vfio_info_cap_header_version: 2,
  offsetof_vfio_info_cap_header_next: 4,
  sizeof_vfio_region_info_cap_sparse_mmap: SIZEOF.vfio_region_info_cap_sparse_mmap,
  offsetof_vfio_region_info_cap_sparse_mmap_nr_areas: 8,
  offsetof_vfio_region_info_cap_sparse_mmap_areas: 16,
  sizeof_vfio_region_sparse_mmap_area: SIZEOF.vfio_region_sparse_mmap_area,
  offsetof_vfio_region_sparse_mmap_area_size: 8,
  sizeof_vfio_region_info_cap_type: SIZEOF.vfio_region_info_cap_type,
  offsetof_vfio_region_info_cap_type_type: 8,
  offsetof_vfio_region_info_cap_type_subtype: 12,
  sizeof_vfio_irq_info: SIZEOF.vfio_irq_info,
  offsetof_vfio_irq_info_flags: 4,
  offsetof_vfio_irq_info_index: 8,
  offsetof_vfio_irq_info_count: 12,
  sizeof_vfio_iommu_type1_dma_map: SIZEOF.vfio_iommu_type1_dma_map,
  offsetof_vfio_iommu_type1_dma_map_flags: 4,
  offsetof_vfio_iommu_type1_dma_map_vaddr: 8,
  offsetof_vfio_iommu_type1_dma_map_iova: 16,
  offsetof_vfio_iommu_type1_dma_map_size: 24,
  sizeof_vfio_iommu_type1_dma_unmap: SIZEOF.vfio_iommu_type1_dma_unmap,
  offsetof_vfio_iommu_type1_dma_unmap_flags: 4,
  offsetof_vfio_iommu_type1_dma_unmap_iova: 8,
  offsetof_vfio_iommu_type1_dma_unmap_size: 16,
  sizeof_kvm_userspace_memory_region: KVM_SIZEOF.kvm_userspace_memory_region,
  offsetof_kvm_userspace_memory_region_flags: 4,
  offsetof_kvm_userspace_memory_region_guest_phys_addr: 8,
  offsetof_kvm_userspace_memory_region_memory_size: 16,
  offsetof_kvm_userspace_memory_region_userspace_addr: 24,
  sizeof_kvm_one_reg: KVM_SIZEOF.kvm_one_reg,
  offsetof_kvm_one_reg_addr: 8,
  // struct kvm_run fields decoded by src/kvm/vcpu.ts
  offsetof_kvm_run_immediate_exit: 1,
  offsetof_kvm_run_exit_reason: 8,
  offsetof_kvm_run_io: 32,
  offsetof_kvm_run_mmio: 32,
  ...Object.fromEntries(['VFIO_GET_API_VERSION', 'VFIO_CHECK_EXTENSION', 'VFIO_SET_IOMMU', 'VFIO_GROUP_GET_STATUS', 'VFIO_GROUP_SET_CONTAINER',
    'VFIO_GROUP_UNSET_CONTAINER', 'VFIO_GROUP_GET_DEVICE_FD', 'VFIO_DEVICE_GET_INFO', 'VFIO_DEVICE_GET_REGION_INFO', 'VFIO_DEVICE_GET_IRQ_INFO',
    'VFIO_DEVICE_SET_IRQS', 'VFIO_DEVICE_RESET', 'VFIO_IOMMU_GET_INFO', 'VFIO_IOMMU_MAP_DMA', 'VFIO_IOMMU_UNMAP_DMA', 'KVM_GET_API_VERSION',
    'KVM_CREATE_VM', 'KVM_CHECK_EXTENSION', 'KVM_GET_VCPU_MMAP_SIZE', 'KVM_CREATE_VCPU', 'KVM_SET_USER_MEMORY_REGION', 'KVM_RUN',
    'KVM_GET_ONE_REG', 'KVM_SET_ONE_REG', 'KVM_CREATE_DEVICE', 'KVM_SET_DEVICE_ATTR'].map((n) => [n, IOCTL[n as keyof typeof IOCTL]])),
  VFIO_TYPE1_IOMMU: VFIO_EXTENSION.TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU: VFIO_EXTENSION.TYPE1v2_IOMMU,
  VFIO_NOIOMMU_IOMMU: VFIO_EXTENSION.NOIOMMU_IOMMU,
  VFIO_GROUP_FLAGS_VIABLE: VFIO_GROUP_FLAGS.VIABLE,
  VFIO_GROUP_FLAGS_CONTAINER_SET: VFIO_GROUP_FLAGS.CONTAINER_SET,
  VFIO_REGION_INFO_FLAG_READ: VFIO_REGION_FLAGS.READ,
  VFIO_REGION_INFO_FLAG_WRITE: VFIO_REGION_FLAGS.WRITE,
  VFIO_REGION_INFO_FLAG_MMAP: VFIO_REGION_FLAGS.MMAP,
  VFIO_REGION_INFO_FLAG_CAPS: VFIO_REGION_FLAGS.CAPS,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP: VFIO_REGION_CAP.SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE: VFIO_REGION_CAP.TYPE,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: VFIO_REGION_CAP.MSIX_MAPPABLE,
  VFIO_DMA_MAP_FLAG_READ: VFIO_DMA_MAP_FLAGS.READ,
  VFIO_DMA_MAP_FLAG_WRITE: VFIO_DMA_MAP_FLAGS.WRITE,
  VFIO_PCI_CONFIG_REGION_INDEX: VFIO_PCI_REGION.CONFIG,
  VFIO_PCI_ROM_REGION_INDEX: VFIO_PCI_REGION.ROM,
  VFIO_PCI_VGA_REGION_INDEX: VFIO_PCI_REGION.VGA,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_MSIX_IRQ_INDEX: VFIO_PCI_IRQ.MSIX,
  KVM_API_VERSION,
  KVM_CAP_NR_MEMSLOTS: KVM_CAP.NR_MEMSLOTS,
  KVM_CAP_READONLY_MEM: KVM_CAP.READONLY_MEM,
  KVM_MEM_LOG_DIRTY_PAGES: KVM_MEM_FLAGS.LOG_DIRTY_PAGES,
  KVM_MEM_READONLY: KVM_MEM_FLAGS.READONLY,
  KVM_EXIT_IO: KVM_EXIT.IO,
  KVM_EXIT_MMIO: KVM_EXIT.MMIO,
  KVM_EXIT_HLT: KVM_EXIT.HLT,
  KVM_EXIT_SHUTDOWN: KVM_EXIT.SHUTDOWN,
  KVM_EXIT_INTERNAL_ERROR: KVM_EXIT.INTERNAL_ERROR,
  KVM_EXIT_SYSTEM_EVENT: KVM_EXIT.SYSTEM_EVENT,
  // What a VMM adds (src/kvm/device.ts, vgic.ts, vcpu.ts)
  sizeof_kvm_irq_level: KVM_SIZEOF.kvm_irq_level,
  offsetof_kvm_irq_level_level: 4,
  KVM_IRQ_LINE: IOCTL.KVM_IRQ_LINE,
  // The VFIO pseudo-device (the 6.1 headers name the attribute group KVM_DEV_VFIO_GROUP; 6.6 added the FILE aliases).
  sizeof_kvm_create_device: KVM_SIZEOF.kvm_create_device,
  offsetof_kvm_create_device_fd: 4,
  offsetof_kvm_create_device_flags: 8,
  sizeof_kvm_device_attr: KVM_SIZEOF.kvm_device_attr,
  offsetof_kvm_device_attr_group: 4,
  offsetof_kvm_device_attr_attr: 8,
  offsetof_kvm_device_attr_addr: 16,
  KVM_GET_DEVICE_ATTR: IOCTL.KVM_GET_DEVICE_ATTR,
  KVM_HAS_DEVICE_ATTR: IOCTL.KVM_HAS_DEVICE_ATTR,
  KVM_DEV_TYPE_ARM_VGIC_V3: KVM_DEV_TYPE_ARM.VGIC_V3,
  KVM_DEV_TYPE_ARM_VGIC_ITS: KVM_DEV_TYPE_ARM.VGIC_ITS,
  offsetof_kvm_run_system_event: 32,
  offsetof_kvm_run_system_event_ndata: 36,
  offsetof_kvm_run_system_event_data: 40,
  KVM_SYSTEM_EVENT_SHUTDOWN: KVM_SYSTEM_EVENT.SHUTDOWN,
  KVM_SYSTEM_EVENT_RESET: KVM_SYSTEM_EVENT.RESET,
  KVM_SYSTEM_EVENT_CRASH: KVM_SYSTEM_EVENT.CRASH,
  KVM_DEV_TYPE_VFIO: KVM_DEV_TYPE.VFIO,
  KVM_CREATE_DEVICE_TEST,
  KVM_DEV_VFIO_GROUP: KVM_DEV_VFIO.FILE,
  KVM_DEV_VFIO_GROUP_ADD: KVM_DEV_VFIO.FILE_ADD,
  KVM_DEV_VFIO_GROUP_DEL: KVM_DEV_VFIO.FILE_DEL,
  sizeof_vfio_device_feature: SIZEOF_VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE: IOCTL.VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_MASK: VFIO_DEVICE_FEATURE_FLAGS.MASK,
  VFIO_DEVICE_FEATURE_GET: VFIO_DEVICE_FEATURE_FLAGS.GET,
  VFIO_DEVICE_FEATURE_SET: VFIO_DEVICE_FEATURE_FLAGS.SET,
  VFIO_DEVICE_FEATURE_PROBE: VFIO_DEVICE_FEATURE_FLAGS.PROBE,
};

/** The interrupt ABI (src/uapi/vfio-irq.ts, src/uapi/kvm-irq.ts). */
const IRQ: Record<string, number | bigint> = {
  sizeof_vfio_irq_set: VFIO_IRQ_SET_SIZEOF,
  offsetof_vfio_irq_set_flags: 4,
  offsetof_vfio_irq_set_index: 8,
  offsetof_vfio_irq_set_start: 12,
  offsetof_vfio_irq_set_count: 16,
  offsetof_vfio_irq_set_data: VFIO_IRQ_SET_SIZEOF,
  VFIO_IRQ_SET_DATA_NONE: VFIO_IRQ_SET.DATA_NONE,
  VFIO_IRQ_SET_DATA_BOOL: VFIO_IRQ_SET.DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD: VFIO_IRQ_SET.DATA_EVENTFD,
  VFIO_IRQ_SET_ACTION_MASK: VFIO_IRQ_SET.ACTION_MASK,
  VFIO_IRQ_SET_ACTION_UNMASK: VFIO_IRQ_SET.ACTION_UNMASK,
  VFIO_IRQ_SET_ACTION_TRIGGER: VFIO_IRQ_SET.ACTION_TRIGGER,
  VFIO_IRQ_INFO_EVENTFD: VFIO_IRQ_FLAGS.EVENTFD,
  VFIO_IRQ_INFO_MASKABLE: VFIO_IRQ_FLAGS.MASKABLE,
  VFIO_IRQ_INFO_AUTOMASKED: VFIO_IRQ_FLAGS.AUTOMASKED,
  VFIO_IRQ_INFO_NORESIZE: VFIO_IRQ_FLAGS.NORESIZE,
  sizeof_kvm_irq_routing: KVM_IRQ_SIZEOF.kvm_irq_routing,
  offsetof_kvm_irq_routing_flags: 4,
  offsetof_kvm_irq_routing_entries: KVM_IRQ_SIZEOF.kvm_irq_routing,
  sizeof_kvm_irq_routing_entry: KVM_IRQ_SIZEOF.kvm_irq_routing_entry,
  offsetof_kvm_irq_routing_entry_type: 4,
  offsetof_kvm_irq_routing_entry_flags: 8,
  offsetof_kvm_irq_routing_entry_u: 16,
  sizeof_kvm_irq_routing_msi: 16,
  offsetof_kvm_irq_routing_msi_address_hi: 4,
  offsetof_kvm_irq_routing_msi_data: 8,
  offsetof_kvm_irq_routing_msi_devid: 12,
  sizeof_kvm_irq_routing_irqchip: 8,
  offsetof_kvm_irq_routing_irqchip_pin: 4,
  sizeof_kvm_irqfd: KVM_IRQ_SIZEOF.kvm_irqfd,
  offsetof_kvm_irqfd_gsi: 4,
  offsetof_kvm_irqfd_flags: 8,
  offsetof_kvm_irqfd_resamplefd: 12,
  sizeof_kvm_msi: KVM_IRQ_SIZEOF.kvm_msi,
  offsetof_kvm_msi_address_hi: 4,
  offsetof_kvm_msi_data: 8,
  offsetof_kvm_msi_flags: 12,
  offsetof_kvm_msi_devid: 16,
  KVM_CREATE_IRQCHIP: IOCTL.KVM_CREATE_IRQCHIP,
  KVM_SET_GSI_ROUTING: IOCTL.KVM_SET_GSI_ROUTING,
  KVM_IRQFD: IOCTL.KVM_IRQFD,
  KVM_SIGNAL_MSI: IOCTL.KVM_SIGNAL_MSI,
  KVM_CAP_IRQCHIP: KVM_IRQ_CAP.IRQCHIP,
  KVM_CAP_IRQ_ROUTING: KVM_IRQ_CAP.IRQ_ROUTING,
  KVM_CAP_IRQFD: KVM_IRQ_CAP.IRQFD,
  KVM_CAP_SIGNAL_MSI: KVM_IRQ_CAP.SIGNAL_MSI,
  KVM_CAP_MSI_DEVID: KVM_IRQ_CAP.MSI_DEVID,
  KVM_IRQ_ROUTING_IRQCHIP: KVM_IRQ_ROUTING_TYPE.IRQCHIP,
  KVM_IRQ_ROUTING_MSI: KVM_IRQ_ROUTING_TYPE.MSI,
  KVM_MSI_VALID_DEVID,
  KVM_IRQFD_FLAG_DEASSIGN: KVM_IRQFD_FLAGS.DEASSIGN,
  KVM_IRQFD_FLAG_RESAMPLE: KVM_IRQFD_FLAGS.RESAMPLE,
};

const X86_64: Record<string, number | bigint> = {
  ...COMMON,
  ...IRQ,
  sizeof_kvm_regs: X86_REGS.size,
  offsetof_kvm_regs_rsp: X86_REGS.rsp,
  offsetof_kvm_regs_rip: X86_REGS.rip,
  offsetof_kvm_regs_rflags: X86_REGS.rflags,
  sizeof_kvm_sregs: X86_SREGS.size,
  offsetof_kvm_sregs_cs: X86_SREGS.cs,
  offsetof_kvm_sregs_ds: X86_SREGS.ds,
  offsetof_kvm_sregs_ss: X86_SREGS.ss,
  offsetof_kvm_sregs_gdt: X86_SREGS.gdt,
  offsetof_kvm_sregs_idt: X86_SREGS.idt,
  offsetof_kvm_sregs_cr0: X86_SREGS.cr0,
  offsetof_kvm_sregs_cr4: X86_SREGS.cr4,
  offsetof_kvm_sregs_efer: X86_SREGS.efer,
  sizeof_kvm_segment: 24,
  offsetof_kvm_segment_limit: X86_SEGMENT.limit,
  offsetof_kvm_segment_selector: X86_SEGMENT.selector,
  offsetof_kvm_segment_type: X86_SEGMENT.type,
  offsetof_kvm_segment_db: X86_SEGMENT.db,
  offsetof_kvm_segment_g: X86_SEGMENT.g,
  KVM_GET_REGS: IOCTL.KVM_GET_REGS,
  KVM_SET_REGS: IOCTL.KVM_SET_REGS,
  KVM_GET_SREGS: IOCTL.KVM_GET_SREGS,
  KVM_SET_SREGS: IOCTL.KVM_SET_SREGS,
};

const AARCH64: Record<string, number | bigint> = {
  ...COMMON,
  ...IRQ,
  sizeof_kvm_vcpu_init: KVM_SIZEOF.kvm_vcpu_init,
  KVM_ARM_VCPU_INIT: IOCTL.KVM_ARM_VCPU_INIT,
  KVM_ARM_PREFERRED_TARGET: IOCTL.KVM_ARM_PREFERRED_TARGET,
  reg_x0: ARM64_CORE_REG.x(0),
  reg_x2: ARM64_CORE_REG.x(2),
  reg_x30: ARM64_CORE_REG.x(30),
  reg_sp: ARM64_CORE_REG.sp,
  reg_pc: ARM64_CORE_REG.pc,
  reg_pstate: ARM64_CORE_REG.pstate,
  KVM_ARM_VCPU_POWER_OFF: KVM_ARM_VCPU_FEATURE.POWER_OFF,
  KVM_ARM_VCPU_PSCI_0_2: KVM_ARM_VCPU_FEATURE.PSCI_0_2,
  PSR_MODE_EL1h: ARM64_PSTATE.MODE_EL1H,
  PSR_F_BIT: ARM64_PSTATE.F,
  PSR_I_BIT: ARM64_PSTATE.I,
  PSR_A_BIT: ARM64_PSTATE.A,
  PSR_D_BIT: ARM64_PSTATE.D,
  KVM_DEV_ARM_VGIC_GRP_ADDR: KVM_DEV_ARM_VGIC.GRP_ADDR,
  KVM_DEV_ARM_VGIC_GRP_NR_IRQS: KVM_DEV_ARM_VGIC.GRP_NR_IRQS,
  KVM_DEV_ARM_VGIC_GRP_CTRL: KVM_DEV_ARM_VGIC.GRP_CTRL,
  KVM_DEV_ARM_VGIC_CTRL_INIT: KVM_DEV_ARM_VGIC.CTRL_INIT,
  KVM_VGIC_V3_ADDR_TYPE_DIST: KVM_DEV_ARM_VGIC.V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST: KVM_DEV_ARM_VGIC.V3_ADDR_TYPE_REDIST,
  KVM_VGIC_ITS_ADDR_TYPE: KVM_DEV_ARM_VGIC.ITS_ADDR_TYPE,
  KVM_ARM_IRQ_TYPE_SHIFT: KVM_ARM_IRQ.TYPE_SHIFT,
  KVM_ARM_IRQ_VCPU_SHIFT: KVM_ARM_IRQ.VCPU_SHIFT,
  KVM_ARM_IRQ_TYPE_SPI: KVM_ARM_IRQ.TYPE_SPI,
  KVM_ARM_IRQ_TYPE_PPI: KVM_ARM_IRQ.TYPE_PPI,
};

function hasCompiler(cc: string): boolean {
  try {
    execFileSync(cc, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A missing compiler skips locally but fails under CI, where .ci/run installs them. */
function describeWith(cc: string, name: string, body: () => void): void {
  if (hasCompiler(cc)) describe(name, body);
  else if (process.env.CI === 'true') describe(name, () => it(`needs ${cc}`, () => { throw new Error(`${cc} is missing (CI installs it)`); }));
  else describe.skip(`${name} (skipped: ${cc} not installed)`, body);
}

function asBigInts(values: Record<string, number | bigint | string>): Record<string, bigint> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, BigInt(v)]));
}

describeWith('cc', 'src/uapi vs <linux/vfio.h>, <linux/kvm.h> on x86-64', () => {
  it('matches every size, offset, ioctl number and constant', () => {
    const binary = path.join(work, 'abi-x86_64');
    execFileSync('cc', ['-Wall', '-Werror', '-o', binary, PROBE]);
    const fromC = JSON.parse(execFileSync(binary, { encoding: 'utf8' })) as Record<string, string>;
    expect(asBigInts(fromC)).toEqual(asBigInts(X86_64));
  });
});

describeWith('aarch64-linux-gnu-gcc', 'src/uapi vs the arm64 cross headers', () => {
  it('matches every size, offset, ioctl number, constant and core register id', () => {
    if (!existsSync('/usr/aarch64-linux-gnu/include/linux/kvm.h') && process.env.CI !== 'true') return;
    const asm = execFileSync('aarch64-linux-gnu-gcc', ['-Wall', '-S', '-o', '-', PROBE], { encoding: 'utf8' });
    const fromC = Object.fromEntries([...asm.matchAll(/@@([A-Za-z0-9_]+)=(-?\d+)@@/g)].map((m) => [m[1]!, BigInt.asUintN(64, BigInt(m[2]!))]));
    expect(fromC).toEqual(asBigInts(AARCH64));
  });
});
