import { defineConfig } from 'vitest/config';

// The emulated-aarch64 tier: each test boots QEMU (TCG) with a 4/16/64 KiB-page arm64 kernel running real
// vfio-pci and KVM. Sequential: two cores, and each guest wants both.
export default defineConfig({
  test: {
    include: ['test/emu/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 1_800_000,
    reporters: ['verbose'],
  },
});
