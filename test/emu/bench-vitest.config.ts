import { defineConfig } from 'vitest/config';

// `npm run bench:emu`: one long emulated boot (not part of `npm run test:emu` or CI).
export default defineConfig({
  test: {
    include: ['test/emu/bench-emu.run.ts'],
    fileParallelism: false,
    testTimeout: 2_400_000,
    hookTimeout: 2_400_000,
    reporters: ['verbose'],
  },
});
