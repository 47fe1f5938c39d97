import { defineConfig } from 'vitest/config';

// `npm run bench:emu`: two emulated boots, the nested guests then the huge-PFN part (not part of `npm run test:emu`
// or CI). One part alone: `npm run bench:emu -- huge-pfn` (or `-- bench-emu.run`).
export default defineConfig({
  test: {
    include: ['test/emu/bench-emu.run.ts', 'test/emu/bench-emu-huge-pfn.run.ts'],
    fileParallelism: false,
    testTimeout: 2_400_000,
    hookTimeout: 2_400_000,
    reporters: ['verbose'],
  },
});
