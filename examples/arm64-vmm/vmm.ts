/**
 * The example VMM: what it owns (RAM, the device tree, the pl011 console, the run loop) on top of what
 * the library provides (the VM and its slots, vCPU init and registers, the vGICv3 + ITS, IRQ lines,
 * decoded exits and in-place MMIO answers).
 */
import {
  Arm64Gic, KvmVcpu, KvmVm, SystemError, initArm64Vcpu, setArm64BootRegisters, type IommuRequest, type SystemEventKind,
  type Syscalls,
} from 'vfio-bars';
import { buildDeviceTree } from './device-tree.js';
import { GuestRam, planBootLayout } from './guest-ram.js';
import { MACHINE } from './machine.js';
import { MmioBus } from './mmio-bus.js';
import { EcamHostBridge } from './pci-ecam.js';
import { Passthrough, PASSTHROUGH_SLOT, type PassthroughStats } from './passthrough.js';
import { Pl011 } from './pl011.js';

export interface VmmOptions {
  readonly kernel: Buffer;
  readonly initrd?: Buffer;
  readonly ramSize: bigint;
  readonly bootargs: string;
  /** Every byte the guest writes to its console. */
  readonly output: (byte: number) => void;
  /** Describe a PCIe host bridge in the device tree. */
  readonly pci?: boolean;
  /** BDF of a device bound to vfio-pci, passed through behind the bridge (implies `pci`). */
  readonly vfio?: string;
  /** The IOMMU path for `vfio` (the library's request). Default `'auto'`. */
  readonly iommu?: IommuRequest;
  /**
   * Back guest RAM by huge pages placed at guest physical = host physical. A noiommu host needs it: its
   * devices DMA to host physical addresses, and the guest programs them with guest physical ones.
   */
  readonly ramAtPhysical?: boolean;
  readonly syscalls?: Syscalls;
}

export interface VmmReport {
  /** How the guest ended: PSCI SYSTEM_OFF is `shutdown`; a panic with `panic=-1` is `reset`. */
  readonly event: SystemEventKind;
  readonly seconds: number;
  /** KVM_RUN returns, by exit kind. */
  readonly exits: Record<string, number>;
  /** MMIO exits served, by device. */
  readonly mmio: Record<string, number>;
  readonly consoleBytes: number;
  readonly uartIrqChanges: number;
  /** Config-space accesses through the ECAM window (0 without `pci`). */
  readonly pciConfigAccesses: number;
  readonly kvmTarget: number;
  /** Guest physical base of RAM (hex): `MACHINE.ram.base`, or its host physical address with `ramAtPhysical`. */
  readonly ramBase: string;
  /** The passed-through device: BAR placement (direct slot or trapped) and the trapped accesses served. */
  readonly passthrough?: PassthroughStats;
}

/**
 * Boots the kernel on one vCPU and runs it until the guest powers off or resets.
 * @throws whatever the library throws while building the VM (all of it released), or a SystemError from KVM_RUN.
 */
export function runVmm(o: VmmOptions): VmmReport {
  const started = process.hrtime.bigint();
  using vm = KvmVm.create(o.syscalls ? { syscalls: o.syscalls } : {});
  using ram = o.ramAtPhysical ? GuestRam.createAtPhysical(vm, o.ramSize) : GuestRam.create(vm, MACHINE.ram.base, o.ramSize);
  const layout = planBootLayout(ram, o.kernel, o.initrd?.length);
  ram.write(layout.kernel, o.kernel);
  if (o.initrd && layout.initrd) ram.write(layout.initrd.start, o.initrd);
  const pci = (o.pci ?? false) || o.vfio !== undefined;
  const dtb = buildDeviceTree({
    ramBase: ram.base,
    ramSize: o.ramSize,
    vcpus: 1,
    bootargs: o.bootargs,
    ...(layout.initrd ? { initrd: layout.initrd } : {}),
    pci,
  });
  ram.write(layout.deviceTree, dtb);

  using vcpu = KvmVcpu.create(vm, 0);
  const kvmTarget = initArm64Vcpu(vm, vcpu);
  // The vGIC sizes its redistributors by the vCPUs that exist: create it after them.
  using gic = Arm64Gic.create(vm, MACHINE.gic);
  setArm64BootRegisters(vcpu, { entry: layout.kernel, deviceTree: layout.deviceTree });

  let uartIrqChanges = 0;
  const uart = new Pl011({
    output: o.output,
    irq: (level) => {
      uartIrqChanges++;
      gic.setSpiLevel(MACHINE.uart.spi, level);
    },
  });
  const bus = new MmioBus();
  bus.add('pl011', MACHINE.uart.base, MACHINE.uart.size, uart);
  const ecam = new EcamHostBridge();
  if (pci) bus.add('pci-ecam', MACHINE.pcieEcam.base, MACHINE.pcieEcam.size, ecam);
  // After the vGIC: the device's MSI-X routes go to its ITS.
  using device = o.vfio === undefined ? undefined : Passthrough.open(
    vm,
    o.vfio,
    { base: ram.base, size: ram.size, hostAddress: ram.hostAddress },
    o.iommu ?? 'auto',
  );
  if (device) {
    ecam.attach(PASSTHROUGH_SLOT.device, PASSTHROUGH_SLOT.function, device);
    bus.add('pci-mmio64', MACHINE.pcieMmio64.base, MACHINE.pcieMmio64.size, device.window(MACHINE.pcieMmio64.base));
    bus.add('pci-mmio32', MACHINE.pcieMmio32.base, MACHINE.pcieMmio32.size, device.window(MACHINE.pcieMmio32.base));
  }

  const exits: Record<string, number> = {};
  const event = runLoop(vcpu, bus, exits);
  return {
    event,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    exits,
    mmio: Object.fromEntries(bus.counts),
    consoleBytes: uart.transmitted,
    uartIrqChanges,
    pciConfigAccesses: ecam.accesses,
    kvmTarget,
    ramBase: `0x${ram.base.toString(16)}`,
    ...(device ? { passthrough: device.stats() } : {}),
  };
}

/** Runs the vCPU until a system event; MMIO exits go to the bus, reads are answered in place. */
function runLoop(vcpu: KvmVcpu, bus: MmioBus, exits: Record<string, number>): SystemEventKind {
  for (;;) {
    let exit;
    try {
      exit = vcpu.run();
    } catch (error) {
      // A signal delivered to the VMM interrupts KVM_RUN; the guest simply continues.
      if (error instanceof SystemError && error.code === 'EINTR') continue;
      throw error;
    }
    exits[exit.kind] = (exits[exit.kind] ?? 0) + 1;
    switch (exit.kind) {
      case 'mmio':
        if (exit.isWrite) bus.write(exit.address, exit.length, exit.data);
        else vcpu.answerMmioRead(bus.read(exit.address, exit.length));
        break;
      case 'system-event':
        return exit.event;
      default:
        throw new Error(
          `unexpected vCPU exit ${JSON.stringify(exit, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`
        );
    }
  }
}
