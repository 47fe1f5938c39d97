/**
 * The built-in device descriptions of `vfio-bars plan --profile NAME`, kept as data in the package's
 * `profiles/NAME.json`: what `describe()` returns under Linux 6.1 vfio-pci on the emulated 64 KiB-page arm64
 * host for QEMU 7.2's NVMe and e1000e, in the format `vfio-bars describe --out` writes. The emulated tier
 * captures both devices on every run and asserts they still equal these files (test/emu/emu.test.ts); the
 * 64 KiB-BAR and unaligned variants are the same NVMe under those QEMU options. Tests read the same files.
 */
import { readFileSync } from 'node:fs';
import { descriptionFromJSON, type DeviceDescription } from '../index.js';
import { UsageError, quote } from './usage.js';

/** Name → one-line summary, in the order `vfio-bars profiles` lists them. */
export const PROFILE_SUMMARIES: Readonly<Record<string, string>> = Object.freeze({
  'qemu-nvme': 'QEMU NVMe, 16 KiB BAR0 with MSI-X table and PBA inside (the 64 KiB-page EINVAL case)',
  'qemu-nvme-64k-bar': 'QEMU NVMe with msix_qsize=2048: a 64 KiB BAR0 (positive control)',
  'qemu-nvme-unaligned': 'QEMU NVMe whose BAR0 is not page-aligned on the host: VFIO reports no MMAP',
  'qemu-e1000e': 'QEMU e1000e: MSI-X table and PBA in their own 16 KiB BAR3',
});

/** The profile names, known without reading any file. */
export function profileNames(): string[] {
  return Object.keys(PROFILE_SUMMARIES);
}

/**
 * The description of profile `name`. Only own keys of PROFILE_SUMMARIES are names (`__proto__` or
 * `constructor` are not), so the name never reaches a path unchecked.
 * @throws {UsageError} `UNKNOWN_PROFILE`, listing the known ones.
 */
export function loadProfile(name: string): DeviceDescription {
  if (!Object.hasOwn(PROFILE_SUMMARIES, name)) {
    throw new UsageError(`unknown profile ${quote(name)}; known: ${profileNames().join(', ')}`, { code: 'UNKNOWN_PROFILE' });
  }
  // src/cli or dist/cli → the package root; a URL, so a path with '#' or '%' resolves correctly.
  const file = new URL(`../../profiles/${name}.json`, import.meta.url);
  return descriptionFromJSON(JSON.parse(readFileSync(file, 'utf8')));
}
