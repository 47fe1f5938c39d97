/**
 * Bounds on a DeviceDescription's lists and strings: far above any real device, low enough that a hostile
 * capture stays cheap to read and plan. Shared by descriptionFromJSON and the planner's validateDescription.
 */
export const DESCRIPTION_LIMITS = {
  regions: 256,
  irqs: 256,
  bars: 6,
  capabilities: 64,
  /** A 64 KiB region-info reply holds at most 4,093 sparse areas. */
  sparseAreas: 4096,
  configCapabilities: 256,
  bdfLength: 256,
  /** Hex text of an unknown capability's body (a 64 KiB reply at most). */
  capabilityData: 128 * 1024,
} as const;

/** PCI: a function has at most 2048 MSI-X vectors (Table Size is 11 bits, plus one). */
export const MAX_MSIX_VECTORS = 2048;
