/**
 * Guest addresses for `vfio-bars map`'s scratch VM. Every BAR goes below 4 GiB: the x86 probe vCPU reads with
 * 32-bit addresses, and a 32-bit BAR cannot legally sit higher. The window starts above the probe's code page.
 */
import { hex, type MappingPlan } from '../index.js';
import { CliError } from './cli-error.js';

/** [MMIO_WINDOW_START, MMIO_WINDOW_END): 2 GiB for BARs, above the probe code at 0x7ff00000. */
export const MMIO_WINDOW_START = 0x8000_0000n;
export const MMIO_WINDOW_END = 0x1_0000_0000n;
/** Guest address of the probe vCPU's code page (below the window). */
export const PROBE_CODE_GPA = 0x7ff0_0000n;

function alignUp(value: bigint, alignment: bigint): bigint {
  return (value + alignment - 1n) / alignment * alignment;
}

/**
 * Naturally aligned guest addresses for every planned BAR, largest first (so no alignment gaps), packed
 * upwards from the window's start.
 * @throws {CliError} `NO_ROOM_BELOW_4G` when the BARs do not fit in the window.
 */
export function assignGuestAddresses(plan: MappingPlan): Map<number, bigint> {
  const addresses = new Map<number, bigint>();
  let next = MMIO_WINDOW_START;
  for (const bar of [...plan.bars].sort((a, b) => (a.guestSize > b.guestSize ? -1 : a.guestSize < b.guestSize ? 1 : 0))) {
    const at = alignUp(next, bar.guestSize);
    if (at + bar.guestSize > MMIO_WINDOW_END) {
      throw new CliError(
        `BAR${bar.index} (${hex(bar.guestSize)} bytes in the guest) does not fit below 4 GiB after the other BARs; `
        + `the map self-test places BARs in ${hex(MMIO_WINDOW_START)}-${hex(MMIO_WINDOW_END - 1n)} only`,
        'NO_ROOM_BELOW_4G',
      );
    }
    addresses.set(bar.index, at);
    next = at + bar.guestSize;
  }
  return addresses;
}
