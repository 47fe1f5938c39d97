/* The BAR-placement contract of the guest view (documented on GuestBarHost). */
import type { PlannedBar } from '../plan/types.js';
import type { BarParking } from '../map/parking.js';

/**
 * What the guest view needs from whoever places BARs in the guest (BarMapper satisfies it
 * structurally): the current placement of a BAR, moving it, and toggling its memory decode.
 */
export interface GuestBarHost {
  /** The BAR as currently placed (its `guestAddress` follows moves), or undefined when it is not mapped. */
  plannedBar(index: number): PlannedBar | undefined;
  /** The guest programmed a new address (decode on): move slots (and DMA maps) there. */
  move(index: number, guestAddress: bigint): unknown;
  /** COMMAND.MEM: false removes the BAR's KVM slots (mmaps kept), true restores them. */
  setDecode(index: number, enabled: boolean): void;
  /**
   * Optional: why the BAR is parked (its range overlaps another BAR or slot, so it has no slots), or
   * undefined. Where a parked BAR overlaps a BAR that is not, an exit there belongs to the latter (it is
   * what the guest reaches through the slots around it); without this method no BAR counts as parked.
   */
  parking?(index: number): BarParking | undefined;
}
