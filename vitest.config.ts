import { defineConfig } from 'vitest/config';

// Host tiers (unit + real /dev/kvm). The emulated-aarch64 tier has its own config (test/emu/).
export default defineConfig({
  // Examples import the package by name, as users do; in tests that name is the sources.
  resolve: { alias: { 'vfio-bars': new URL('./src/index.ts', import.meta.url).pathname } },
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/emu/**', 'node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
