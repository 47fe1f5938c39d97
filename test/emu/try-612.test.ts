// LOCAL ONLY (not committed): runs single scenarios with hand-picked artefacts.
import { it, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { bootScenario, buildInitrd, type Artefacts, type Scenario } from './run-guest.js';
const C = '/root/.cache/vfio-bars';
const pick = (dir: string, re: RegExp) => `${C}/${dir}/${readdirSync(`${C}/${dir}`).find((n) => re.test(n))}`;
it('try', async () => {
  const a: Artefacts = {
    KERNEL_4K: '', KERNEL_16K: '', KERNEL_64K: pick('kernels', /^Image-64K-/), BASE_INITRAMFS: pick('initramfs', /^base-/),
    SHIM_ARM64: pick('arm64', /^vfio_bars-.*\.node$/), KOFFI_ARM64: pick('arm64', /^koffi-linux-arm64-/), CACHE: C,
    KERNEL_612_64K: process.env.K612 ? pick('kernels', /^Image-6\.12-64K-/) : undefined, NODE_FLOOR_CPIO: pick('arm64', /^node-floor-/),
  };
  const initrd = buildInitrd(a);
  const s = JSON.parse(process.env.SCENARIO!) as Scenario;
  const run = await bootScenario(a, initrd, s);
  console.log(run.seconds, run.logPath, JSON.stringify(run.result, null, 1).slice(0, 6000));
  expect(run.result.ok).toBe(true);
}, 600_000);
