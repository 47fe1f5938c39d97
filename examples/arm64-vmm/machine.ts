/**
 * The example machine's guest physical memory map (the same places QEMU's `virt` board uses, so a
 * reader can compare with `virt-kvm-nvme.dts`), and the interrupt numbers the device tree announces.
 */
export const MACHINE = {
  gic: {
    distributor: 0x0800_0000n,
    its: 0x0808_0000n,
    redistributors: 0x080a_0000n,
  },
  uart: { base: 0x0900_0000n, size: 0x1000n, spi: 1 },
  /** PCIe ECAM of bus 0 only: 32 devices x 8 functions x 4 KiB. */
  pcieEcam: { base: 0x40_1000_0000n, size: 0x10_0000n },
  /** 64-bit MMIO window where the guest places 64-bit BARs. */
  pcieMmio64: { base: 0x80_0000_0000n, size: 0x80_0000_0000n },
  /** 32-bit MMIO window below 4 GiB, for 32-bit BARs (e1000e's). */
  pcieMmio32: { base: 0x1000_0000n, size: 0x2eff_0000n },
  ram: { base: 0x4000_0000n },
  /** PPIs of the architected timer, as the device tree numbers them (interrupt id - 16). */
  timerPpis: { securePhys: 13, phys: 14, virt: 11, hypPhys: 10 },
  uartClockHz: 24_000_000,
} as const;

/** GIC interrupt specifier flags in a device tree: level-triggered, active high. */
export const IRQ_LEVEL_HIGH = 4;
export const GIC_SPI = 0;
export const GIC_PPI = 1;
