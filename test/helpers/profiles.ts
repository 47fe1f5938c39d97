/**
 * The captured device descriptions of profiles/*.json (the CLI's `--profile` data), as test fixtures.
 * One copy of the data: tests, the CLI and the emulated tier's "still equal" check read the same files.
 */
import { loadProfile } from '../../src/cli/profiles.js';
import type { DeviceDescription } from '../../src/vfio/description.js';

export { PROFILE_SUMMARIES, loadProfile, profileNames } from '../../src/cli/profiles.js';

/** QEMU NVMe (1b36:0010), 65 MSI-X vectors: 16 KiB BAR0 with the table at 0x2000 and the PBA at 0x3000. */
export const qemuNvme = loadProfile('qemu-nvme');
/** QEMU NVMe with msix_qsize=2048: the MSI-X table grows BAR0 to 64 KiB (table 0x2000+0x8000, PBA 0xa000). */
export const qemuNvme64kBar = loadProfile('qemu-nvme-64k-bar');
/** The same NVMe when its BAR0 is not page-aligned on the host (QEMU's default NIC left in): no MMAP. */
export const qemuNvmeUnaligned = loadProfile('qemu-nvme-unaligned');
/** QEMU e1000e (8086:10d3): MSI-X in its own 16 KiB BAR3 (table at 0, PBA at 0x2000). */
export const qemuE1000e = loadProfile('qemu-e1000e');

/**
 * Not captured: e1000e with an 8 MiB BAR0 whose MSI-X table sits in its middle, kept as a hole, so BAR0 maps
 * as two mappings that each hold 2 MiB blocks (the second starts 4 MiB + 4 KiB in): huge-PFN placement tests.
 */
export const e1000eBigBar0: DeviceDescription = {
  ...qemuE1000e,
  regions: [{ ...qemuE1000e.regions[0]!, size: 0x80_0000n }, ...qemuE1000e.regions.slice(1)],
  msix: {
    capOffset: 0xa0,
    vectors: 5,
    table: { bir: 0, offset: 0x40_0000n, size: 0x50n },
    pba: { bir: 0, offset: 0x40_0800n, size: 0x8n },
  },
};
