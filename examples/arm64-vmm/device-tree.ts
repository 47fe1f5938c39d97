/**
 * The device tree this VMM hands to Linux: RAM, one or more vCPUs with PSCI over HVC, the vGICv3 and its
 * ITS, the architected timer, the pl011 console, and (when a PCI host is given) a generic ECAM host bridge.
 * The guest assigns BARs itself: no `linux,pci-probe-only`.
 */
import { randomBytes } from 'node:crypto';
import { FdtWriter } from './fdt.js';
import { GIC_PPI, GIC_SPI, IRQ_LEVEL_HIGH, MACHINE } from './machine.js';

export interface DeviceTreeOptions {
  /** Guest physical base of RAM. Default: `MACHINE.ram.base`. */
  readonly ramBase?: bigint;
  readonly ramSize: bigint;
  readonly vcpus: number;
  readonly bootargs: string;
  readonly initrd?: { readonly start: bigint; readonly end: bigint };
  /** Adds the ECAM host bridge (bus 0 only) with its 64-bit MMIO window. */
  readonly pci?: boolean;
}

const PHANDLE = { gic: 1, its: 2, clock: 3 } as const;

/** Splits a u64 into the two cells of a `#address-cells = <2>` / `#size-cells = <2>` tree. */
function cells(...values: bigint[]): { u32: number[] } {
  return { u32: values.flatMap((v) => [Number(v >> 32n), Number(v & 0xffff_ffffn)]) };
}

export function buildDeviceTree(o: DeviceTreeOptions): Buffer {
  const fdt = new FdtWriter();
  fdt.beginNode('')
    .property('compatible', 'linux,dummy-virt')
    .property('#address-cells', { u32: [2] })
    .property('#size-cells', { u32: [2] })
    .property('interrupt-parent', { u32: [PHANDLE.gic] });

  chosen(fdt, o);
  const ramBase = o.ramBase ?? MACHINE.ram.base;
  fdt.beginNode(`memory@${ramBase.toString(16)}`)
    .property('device_type', 'memory')
    .property('reg', cells(ramBase, o.ramSize))
    .endNode();
  cpus(fdt, o.vcpus);
  fdt.beginNode('psci').property('compatible', ['arm,psci-1.0', 'arm,psci-0.2']).property('method', 'hvc').endNode();
  gic(fdt, o.vcpus);
  timer(fdt);
  uart(fdt);
  if (o.pci) pcie(fdt);
  fdt.endNode();
  return fdt.finish();
}

function chosen(fdt: FdtWriter, o: DeviceTreeOptions): void {
  fdt.beginNode('chosen')
    .property('bootargs', o.bootargs)
    .property('stdout-path', `/pl011@${MACHINE.uart.base.toString(16)}`)
    // Seeds the guest's CRNG at boot (CONFIG_RANDOM_TRUST_BOOTLOADER): no entropy stall under TCG.
    .property('rng-seed', randomBytes(64));
  if (o.initrd) {
    fdt.property('linux,initrd-start', { u64: [o.initrd.start] }).property('linux,initrd-end', { u64: [o.initrd.end] });
  }
  fdt.endNode();
}

function cpus(fdt: FdtWriter, count: number): void {
  fdt.beginNode('cpus').property('#address-cells', { u32: [1] }).property('#size-cells', { u32: [0] });
  for (let i = 0; i < count; i++) {
    // KVM gives vCPU i the MPIDR affinity i (up to 16 per cluster), which `reg` must match.
    fdt.beginNode(`cpu@${i}`)
      .property('device_type', 'cpu')
      .property('compatible', 'arm,arm-v8')
      .property('reg', { u32: [i] })
      .property('enable-method', 'psci')
      .endNode();
  }
  fdt.endNode();
}

function gic(fdt: FdtWriter, vcpus: number): void {
  const { distributor, redistributors, its } = MACHINE.gic;
  fdt.beginNode(`intc@${distributor.toString(16)}`)
    .property('compatible', 'arm,gic-v3')
    .property('#interrupt-cells', { u32: [3] })
    .property('interrupt-controller', { empty: true })
    .property('#address-cells', { u32: [2] })
    .property('#size-cells', { u32: [2] })
    .property('ranges', { empty: true })
    .property('reg', cells(distributor, 0x1_0000n, redistributors, 0x2_0000n * BigInt(vcpus)))
    .property('phandle', { u32: [PHANDLE.gic] });
  fdt.beginNode(`its@${its.toString(16)}`)
    .property('compatible', 'arm,gic-v3-its')
    .property('msi-controller', { empty: true })
    .property('#msi-cells', { u32: [1] })
    .property('reg', cells(its, 0x2_0000n))
    .property('phandle', { u32: [PHANDLE.its] })
    .endNode();
  fdt.endNode();
}

function timer(fdt: FdtWriter): void {
  const { securePhys, phys, virt, hypPhys } = MACHINE.timerPpis;
  fdt.beginNode('timer')
    .property('compatible', 'arm,armv8-timer')
    .property('always-on', { empty: true })
    .property('interrupts', { u32: [securePhys, phys, virt, hypPhys].flatMap((ppi) => [GIC_PPI, ppi, IRQ_LEVEL_HIGH]) })
    .endNode();
}

function uart(fdt: FdtWriter): void {
  fdt.beginNode('apb-pclk')
    .property('compatible', 'fixed-clock')
    .property('#clock-cells', { u32: [0] })
    .property('clock-frequency', { u32: [MACHINE.uartClockHz] })
    .property('clock-output-names', 'clk24mhz')
    .property('phandle', { u32: [PHANDLE.clock] })
    .endNode();
  fdt.beginNode(`pl011@${MACHINE.uart.base.toString(16)}`)
    .property('compatible', ['arm,pl011', 'arm,primecell'])
    .property('reg', cells(MACHINE.uart.base, MACHINE.uart.size))
    .property('interrupts', { u32: [GIC_SPI, MACHINE.uart.spi, IRQ_LEVEL_HIGH] })
    .property('clocks', { u32: [PHANDLE.clock, PHANDLE.clock] })
    .property('clock-names', ['uartclk', 'apb_pclk'])
    .endNode();
}

/** PCI address space codes (phys.hi `ss`): 32-bit memory 0b10, 64-bit memory 0b11. */
const PCI_SPACE_MEM32 = 0x0200_0000;
const PCI_SPACE_MEM64 = 0x0300_0000;

function pcie(fdt: FdtWriter): void {
  const { base, size } = MACHINE.pcieEcam;
  const window = MACHINE.pcieMmio64;
  const low = MACHINE.pcieMmio32;
  fdt.beginNode(`pcie@${base.toString(16)}`)
    .property('compatible', 'pci-host-ecam-generic')
    .property('device_type', 'pci')
    .property('#address-cells', { u32: [3] })
    .property('#size-cells', { u32: [2] })
    .property('bus-range', { u32: [0, 0] })
    .property('linux,pci-domain', { u32: [0] })
    .property('dma-coherent', { empty: true })
    .property('reg', cells(base, size))
    // PCI bus addresses equal CPU addresses in both windows.
    .property('ranges', { u32: [
      PCI_SPACE_MEM32, ...cells(low.base).u32, ...cells(low.base, low.size).u32,
      PCI_SPACE_MEM64, ...cells(window.base).u32, ...cells(window.base, window.size).u32,
    ] })
    .property('msi-map', { u32: [0, PHANDLE.its, 0, 0x1_0000] })
    .endNode();
}
