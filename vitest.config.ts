import { defineConfig } from 'vitest/config';

// Host tiers (unit + real /dev/kvm). The emulated-aarch64 tier has its own config (test/emu/).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/emu/**', 'node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
