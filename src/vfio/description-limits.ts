/**
 * Bounds on a DeviceDescription's lists and strings: far above any real device, low enough that a hostile
 * capture stays cheap to read and plan. Shared by descriptionFromJSON and the planner's validateDescription.
 */
export const DESCRIPTION_LIMITS = {
  /** Regions per description. */
  regions: 256,
  /** Interrupt indexes per description. */
  irqs: 256,
  /** BAR registers (PCI has six). */
  bars: 6,
  /** Capabilities per region chain. */
  capabilities: 64,
  /** A 64 KiB region-info reply holds at most 4,093 sparse areas. */
  sparseAreas: 4096,
  /** Entries of the config-space capability list. */
  configCapabilities: 256,
  /** Characters of `bdf`. */
  bdfLength: 256,
  /** Hex text of an unknown capability's body (a 64 KiB reply at most). */
  capabilityData: 128 * 1024,
} as const;

/** PCI: a function has at most 2048 MSI-X vectors (Table Size is 11 bits, plus one). */
export const MAX_MSIX_VECTORS = 2048;
