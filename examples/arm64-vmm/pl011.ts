/**
 * A pl011 UART subset, served from MMIO exits: transmit only (the guest's bytes go to `output`), a FIFO
 * that is always empty and never full (so Linux sends without waiting), the interrupt mask and raw status
 * registers Linux's amba-pl011 driver programs, and the PrimeCell id registers the AMBA bus reads.
 */
import type { MmioDevice } from './mmio-bus.js';

const REG = { DR: 0x000, RSR: 0x004, FR: 0x018, ILPR: 0x020, IBRD: 0x024, FBRD: 0x028, LCR_H: 0x02c, CR: 0x030, IFLS: 0x034, IMSC: 0x038, RIS: 0x03c, MIS: 0x040, ICR: 0x044, DMACR: 0x048 } as const;
const FR_RXFE = 0x10;
const FR_TXFE = 0x80;
/** Raw interrupt bit of the transmitter: its FIFO is always at or below the trigger level. */
const INT_TX = 0x20;
/** PrimeCell peripheral id 0x00041011 (pl011) and cell id 0xb105f00d, one byte per register from 0xfe0. */
const ID_REGISTERS = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
const ID_BASE = 0xfe0;

export interface Pl011Options {
  /** Receives every byte the guest transmits. */
  readonly output: (byte: number) => void;
  /** Drives the UART's interrupt line (called on changes only). */
  readonly irq: (level: boolean) => void;
}

export class Pl011 implements MmioDevice {
  readonly #options: Pl011Options;
  /** Registers the driver writes and reads back (baud divisors, line and control, FIFO level, DMA). */
  readonly #plain = new Map<number, number>([[REG.CR, 0x300], [REG.IFLS, 0x12]]);
  #imsc = 0;
  #line = false;
  /** Bytes transmitted, for the VMM's report. */
  transmitted = 0;

  constructor(options: Pl011Options) {
    this.#options = options;
  }

  read(offset: bigint): bigint {
    const at = Number(offset);
    if (at >= ID_BASE && at < ID_BASE + ID_REGISTERS.length * 4 && at % 4 === 0) return BigInt(ID_REGISTERS[(at - ID_BASE) / 4]!);
    switch (at) {
      case REG.DR:
      case REG.RSR:
        return 0n; // no input
      case REG.FR:
        return BigInt(FR_TXFE | FR_RXFE);
      case REG.IMSC:
        return BigInt(this.#imsc);
      case REG.RIS:
        return BigInt(INT_TX);
      case REG.MIS:
        return BigInt(INT_TX & this.#imsc);
      default:
        return BigInt(this.#plain.get(at) ?? 0);
    }
  }

  write(offset: bigint, _size: number, value: bigint): void {
    const at = Number(offset);
    const v = Number(value & 0xffff_ffffn);
    switch (at) {
      case REG.DR:
        this.transmitted++;
        this.#options.output(v & 0xff);
        return;
      case REG.IMSC:
        this.#imsc = v & 0x7ff;
        this.#update();
        return;
      case REG.ICR:
        return; // the transmitter's raw status re-asserts at once: its FIFO is empty
      case REG.RSR:
        return;
      default:
        this.#plain.set(at, v);
    }
  }

  #update(): void {
    const level = (INT_TX & this.#imsc) !== 0;
    if (level === this.#line) return;
    this.#line = level;
    this.#options.irq(level);
  }
}
