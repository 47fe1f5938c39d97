/**
 * A passed-through VFIO PCI device behind the ECAM bridge, served by the library: the BarMapper places
 * its BARs (KVM slots where the page size allows), PassthroughDevice answers the guest's config space and
 * trapped BAR accesses and routes MSI-X through irqfd + the vITS (KVM_MSI_VALID_DEVID). The VMM owns
 * only the wiring: where the device sits on the bus, guest RAM in the IOMMU, the GSI grant.
 */
import {
  BarMapper, GsiRouter, IommuContext, PassthroughDevice, VfioDevice, planBarMappings, type IommuRequest, type KvmVm,
  type MappedBar,
} from 'vfio-bars';
import { MACHINE } from './machine.js';
import type { MmioDevice } from './mmio-bus.js';
import type { PciFunction } from './pci-ecam.js';

/** Bus 0, device 1, function 0: the requester id the ITS sees (the `msi-map` is the identity). */
export const PASSTHROUGH_SLOT = { device: 1, function: 0 } as const;
const REQUESTER_ID = (PASSTHROUGH_SLOT.device << 3) | PASSTHROUGH_SLOT.function;
/** GSIs granted to the device's MSI-X routes (arm64 KVM uses no GSI for its own SPIs). */
const GSI_GRANT = { first: 64, count: 128 } as const;

export interface PassthroughStats {
  readonly bdf: string;
  /** The IOMMU path the library took ('auto' resolved): type1v2, iommufd or noiommu. */
  readonly iommu: string | undefined;
  /** Per BAR: guest address and whether it is backed by a KVM slot (direct) or fully trapped. */
  readonly bars: {
    index: number; gpa: string | undefined; guestSize: string; state: 'direct' | 'trapped'; slots: number;
    /** Why a decoding BAR has no slot right now (it overlaps another BAR or a slot), if it does not. */
    parked?: string;
  }[];
  /** MMIO exits the VMM served for the device's BARs (trapped accesses). */
  readonly trappedAccesses: number;
  readonly configAccesses: number;
}

export class Passthrough implements PciFunction, Disposable {
  readonly #context: IommuContext;
  readonly #device: VfioDevice;
  readonly #mapper: BarMapper;
  readonly #guest: PassthroughDevice;
  readonly #data = new Uint8Array(8);
  trappedAccesses = 0;
  configAccesses = 0;

  private constructor(context: IommuContext, device: VfioDevice, mapper: BarMapper, guest: PassthroughDevice) {
    this.#context = context;
    this.#device = device;
    this.#mapper = mapper;
    this.#guest = guest;
  }

  /**
   * Opens `bdf` (bound to vfio-pci), DMA-maps guest RAM at IOVA = GPA, plans its BARs at the start of
   * the 64-bit window (where Linux will put them; its own BAR programming then moves them) and builds
   * the guest view with MSI-X through irqfd.
   */
  static open(vm: KvmVm, bdf: string, ram: { base: bigint; size: bigint; hostAddress: bigint }, iommu: IommuRequest): Passthrough {
    // The VM's IOMMU context: guest RAM is DMA-mapped there once, at IOVA = GPA, for every device (under
    // noiommu the library only checks that GPA is also the RAM's host physical address).
    const context = IommuContext.open({ iommu });
    let device: VfioDevice | undefined;
    try {
      device = VfioDevice.open(bdf, { context });
      const description = device.describe();
      context.mapGuestMemory(ram.base, ram.hostAddress, ram.size);
      const pageSize = vm.syscalls.pageSize();
      const relative = planBarMappings(description, { pageSize });
      const plan = planBarMappings(description, { pageSize, barAddresses: initialAddresses(relative.bars) });
      const mapper = new BarMapper(device, vm);
      mapper.map(plan);
      const router = new GsiRouter(vm, { grant: GSI_GRANT });
      const guest = new PassthroughDevice(device, mapper, vm, { description, interrupts: { mode: 'irqfd', router, devid: REQUESTER_ID } });
      return new Passthrough(context, device, mapper, guest);
    } catch (error) {
      device?.close();
      context.close();
      throw error;
    }
  }

  configRead(offset: number, size: number): bigint {
    this.configAccesses++;
    return BigInt(this.#guest.configRead(offset, size as 1 | 2 | 4) >>> 0);
  }

  configWrite(offset: number, size: number, value: bigint): void {
    this.configAccesses++;
    this.#guest.configWrite(offset, size as 1 | 2 | 4, Number(value & 0xffff_ffffn));
  }

  /** The device's trapped BAR bytes in the MMIO window starting at `base` (the bus gives offsets from it). */
  window(base: bigint): MmioDevice {
    return {
      read: (offset, size) => this.#read(base + offset, size),
      write: (offset, size, value) => this.#write(base + offset, size, value),
    };
  }

  #read(gpa: bigint, size: number): bigint {
    const data = this.#data.subarray(0, size);
    data.fill(0xff); // what nothing answers: all ones, as on a PCI bus
    if (this.#guest.handleMmio(gpa, data, false)) this.trappedAccesses++;
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(data[i]!);
    return value;
  }

  #write(gpa: bigint, size: number, value: bigint): void {
    const data = this.#data.subarray(0, size);
    for (let i = 0; i < size; i++) data[i] = Number((value >> BigInt(8 * i)) & 0xffn);
    if (this.#guest.handleMmio(gpa, data, true)) this.trappedAccesses++;
  }

  stats(): PassthroughStats {
    return {
      bdf: this.#device.bdf,
      iommu: this.#device.iommuMode,
      bars: [...this.#mapper.bars.values()].map((b: MappedBar) => ({
        index: b.index,
        gpa: b.guestAddress === undefined ? undefined : `0x${b.guestAddress.toString(16)}`,
        guestSize: `0x${b.planned.guestSize.toString(16)}`,
        state: b.state,
        slots: b.regions.filter((r) => r.slot !== undefined).length,
        ...(b.parked && { parked: b.parked.code }),
      })),
      trappedAccesses: this.trappedAccesses,
      configAccesses: this.configAccesses,
    };
  }

  close(): void {
    this.#guest.close();
    this.#mapper[Symbol.dispose]();
    this.#device.close();
    this.#context.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Initial BAR places (PCI leaves them to firmware; this VMM has none); Linux then programs its own. 32-bit
 * BARs go downwards from the top of the window below 4 GiB, so the guest's assignment (from the bottom) is a
 * real move; 64-bit BARs go upwards from the 64-bit window's base. Where a BAR the guest reprograms lands
 * on another while decoding, the library parks it (trapped, no slot) until the overlap ends.
 */
function initialAddresses(bars: readonly { index: number; guestSize: bigint; is64Bit: boolean }[]): Record<number, bigint> {
  const out: Record<number, bigint> = {};
  let low = MACHINE.pcieMmio32.base + MACHINE.pcieMmio32.size;
  let high = MACHINE.pcieMmio64.base;
  for (const bar of bars) {
    if (bar.is64Bit) {
      high = (high + bar.guestSize - 1n) / bar.guestSize * bar.guestSize;
      out[bar.index] = high;
      high += bar.guestSize;
    } else {
      low = (low - bar.guestSize) / bar.guestSize * bar.guestSize;
      out[bar.index] = low;
    }
  }
  return out;
}
