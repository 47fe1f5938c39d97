/* The BAR-placement contract of the guest view (documented on GuestBarHost). */
import type { PlannedBar } from '../plan/types.js';

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
}
