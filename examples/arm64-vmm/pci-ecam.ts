/**
 * The PCIe ECAM host bridge (`pci-host-ecam-generic`, bus 0 only): turns MMIO exits in the ECAM window
 * into config-space accesses of the function they address. A slot without a function reads as all ones,
 * which is how the guest's enumeration learns that nothing is there.
 */
import type { MmioDevice } from './mmio-bus.js';

/** What a PCI function behind the bridge answers (a passed-through device's guest view, for one). */
export interface PciFunction {
  configRead(offset: number, size: number): bigint;
  configWrite(offset: number, size: number, value: bigint): void;
}

/** Bytes of configuration space per function (PCIe extended). */
const CONFIG_SIZE = 0x1000;

export class EcamHostBridge implements MmioDevice {
  readonly #functions = new Map<number, PciFunction>();
  /** Config accesses served, for the report. */
  accesses = 0;

  /** Places `fn` at bus 0, device `device`, function `func`. */
  attach(device: number, func: number, fn: PciFunction): void {
    if (!Number.isInteger(device) || device < 0 || device > 31 || !Number.isInteger(func) || func < 0 || func > 7) {
      throw new RangeError(`PCI device ${device} function ${func} does not exist on a bus`);
    }
    this.#functions.set(device * 8 + func, fn);
  }

  read(offset: bigint, size: number): bigint {
    this.accesses++;
    const { fn, register } = this.#decode(offset);
    return fn ? fn.configRead(register, size) : (1n << BigInt(8 * size)) - 1n;
  }

  write(offset: bigint, size: number, value: bigint): void {
    this.accesses++;
    const { fn, register } = this.#decode(offset);
    fn?.configWrite(register, size, value);
  }

  /** ECAM address: bus << 20 | device << 15 | function << 12 | register. Only bus 0 is populated. */
  #decode(offset: bigint): { fn: PciFunction | undefined; register: number } {
    const at = Number(offset);
    const bus = at >> 20;
    const devfn = (at >> 12) & 0xff;
    return { fn: bus === 0 ? this.#functions.get(devfn) : undefined, register: at & (CONFIG_SIZE - 1) };
  }
}
