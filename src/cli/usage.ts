/** Usage texts and command-line parsing helpers: sizes, addresses, BAR addresses, and the usage error (exit 2). */
import { VfioBarsError, normalizeBdf } from '../index.js';
import type { IommuChoice } from './environment.js';

/** Longest piece of an argument echoed in a message: a 100,000-character argument is cut, not repeated. */
const MAX_ECHO = 40;

/**
 * The command line is wrong (unknown option, malformed value, missing argument). The CLI exits 2 for it and
 * prints the usage. `code` says which rule was broken (`'USAGE'` unless a more specific one applies).
 */
export class UsageError extends VfioBarsError {
  readonly code: string;

  constructor(message: string, options: { code?: string } = {}) {
    super(message);
    this.code = options.code ?? 'USAGE';
  }
}

/** `"text"`, or the first 40 characters of it and its length, for messages. */
export function quote(text: string): string {
  return text.length <= MAX_ECHO ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, MAX_ECHO))}... (${text.length} characters)`;
}

const EXIT_CODES = 'exit codes: 0 ok, 1 failed (device, kernel, verification), 2 usage error.';
const BDF_FORMS = 'BDF: a PCI address, 0000:01:00.0 or as lspci prints it, 01:00.0 (domain 0000).';
const DEVICE_OPTIONS = `  --iommu MODE          auto (default), iommufd, type1 or noiommu: the kernel path a VMM would open
  --msix relocate|hole  how the MSI-X table and PBA stay trapped (default relocate)
  --dma-map             DMA-map each direct mapping at its guest address (VMMs without a vIOMMU do this)`;

/** Per-command usage, printed by `vfio-bars COMMAND --help` and after a usage error in that command. */
export const COMMAND_USAGE: Readonly<Record<string, string>> = {
  plan: `usage: vfio-bars plan (--profile NAME | --description FILE) [options]
Plans a device's BAR mappings without touching it: no device, no root needed.
  --profile NAME        a built-in device description (vfio-bars profiles lists them)
  --description FILE    a description written by vfio-bars describe BDF --out FILE (at most 1 MiB)
  --page-size SIZE      host page size: 4K, 16K, 64K, or a power of two >= 4096 in bytes (default: this host's)
  --bar-gpa I=ADDR      guest address of BAR I (0-5), at most once per BAR; without it the plan is relative
  --msix relocate|hole  how the MSI-X table and PBA stay trapped (default relocate)
  --json                print the plan as JSON`,
  describe: `usage: vfio-bars describe BDF [--out FILE] [--iommu MODE]
Captures a device bound to vfio-pci as DeviceDescription JSON: the file plan --description reads,
and what a bug report should carry.
  --out FILE            write the JSON to FILE instead of stdout
  --iommu MODE          auto (default), iommufd, type1 or noiommu
${BDF_FORMS}`,
  inspect: `usage: vfio-bars inspect BDF [options]
Describes a device bound to vfio-pci and shows its plan on this host and on 4K/16K/64K-page hosts.
${DEVICE_OPTIONS}
  --json                print description and plans as JSON
${BDF_FORMS}`,
  map: `usage: vfio-bars map BDF [options]
Maps every BAR of a device into a scratch KVM VM (BARs placed below 4 GiB), then releases everything.
  --verify              have a vCPU read each direct mapping and compare with pread of the device
                        (the MSI-X table and PBA are not compared: pread returns all-ones there)
${DEVICE_OPTIONS}
  --json                print the report as JSON (on stdout, also when verification fails)
${BDF_FORMS}`,
  profiles: `usage: vfio-bars profiles
Lists the built-in device descriptions that plan --profile accepts.`,
};

/** The overview printed by `vfio-bars --help`. */
export const USAGE = `usage: vfio-bars COMMAND [options]
  plan      plan a captured device's BAR mappings (no device, no root)
  describe  capture a device's description as JSON for plan --description
  inspect   describe a device and show its plan on this host and others
  map       map a device's BARs into a scratch KVM VM; --verify reads them back
  profiles  list the built-in device descriptions

vfio-bars COMMAND --help   options of one command
vfio-bars --version        the package version
${EXIT_CODES} NODE_DEBUG=vfio-bars shows decisions and stacks.`;

/** The usage text to print after an error in `command` (the overview for an unknown one). */
export function usageFor(command: string | undefined): string {
  return (command !== undefined && Object.hasOwn(COMMAND_USAGE, command) ? COMMAND_USAGE[command] : undefined) ?? USAGE;
}

/** A u64 in hex (`0x...`) or decimal. */
export function parseAddress(text: string, what: string): bigint {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) throw new UsageError(`${what}: ${quote(text)} is not a number (use hex 0x... or decimal)`);
  const value = BigInt(text);
  if (value >= 1n << 64n) throw new UsageError(`${what}: ${quote(text)} does not fit in 64 bits`);
  return value;
}

/** `4K`, `16K`, `64K`, `0x10000` or `65536`. */
export function parseSize(text: string, what: string): bigint {
  const match = /^(\d+)([KMG])$/i.exec(text);
  if (!match) return parseAddress(text, what);
  const shift = { K: 10n, M: 20n, G: 30n }[match[2]!.toUpperCase() as 'K' | 'M' | 'G'];
  return parseAddress(match[1]!, what) << shift;
}

const MIN_PAGE = 0x1000n;
const MAX_PAGE = 1n << 30n;

/** A host page size: a power of two from 4 KiB to 1 GiB (`3K` is a usage error, not a planner failure). */
export function parsePageSize(text: string): bigint {
  const size = parseSize(text, '--page-size');
  const powerOfTwo = size > 0n && (size & (size - 1n)) === 0n;
  if (!powerOfTwo || size < MIN_PAGE || size > MAX_PAGE) {
    const expected = 'expected a power of two from 4K to 1G, e.g. 4K, 16K or 64K';
    throw new UsageError(`--page-size ${quote(text)}: ${expected}`, { code: 'BAD_PAGE_SIZE' });
  }
  return size;
}

/** `--bar-gpa 0=0x8000000000` → [0, 0x8000000000n]. */
export function parseBarGpa(text: string): [number, bigint] {
  const match = /^([0-5])=(.+)$/s.exec(text);
  if (!match) throw new UsageError(`--bar-gpa ${quote(text)}: expected I=ADDR with I in 0-5`);
  return [Number(match[1]), parseAddress(match[2]!, `--bar-gpa ${match[1]}`)];
}

/** Every `--bar-gpa`, at most one per BAR: a repeated BAR is a usage error, not "the last one wins". */
export function parseBarGpas(texts: readonly string[]): Map<number, bigint> {
  const addresses = new Map<number, bigint>();
  for (const text of texts) {
    const [index, address] = parseBarGpa(text);
    if (addresses.has(index)) throw new UsageError(`--bar-gpa: BAR${index} given twice`, { code: 'DUPLICATE_BAR_GPA' });
    addresses.set(index, address);
  }
  return addresses;
}

/** The one positional PCI address of a device command, normalised (`01:00.0` → `0000:01:00.0`). */
export function parseBdfArgument(command: string, positionals: readonly string[]): string {
  const [bdf, ...extra] = positionals;
  if (bdf === undefined || extra.length > 0) {
    throw new UsageError(`${command} takes exactly one PCI address, e.g. 0000:01:00.0 or 01:00.0`);
  }
  try {
    return normalizeBdf(bdf);
  } catch (error) {
    if (error instanceof VfioBarsError) throw new UsageError(error.message, { code: error.code });
    throw error;
  }
}

/** `--msix`: `relocate` (default) or `hole`. */
export function parseMsixStrategy(text: string | undefined): 'relocate' | 'hole' {
  const msix = text ?? 'relocate';
  if (msix !== 'relocate' && msix !== 'hole') throw new UsageError(`--msix ${quote(msix)}: expected relocate or hole`);
  return msix;
}

/** `--iommu`: which kernel path VfioDevice.open takes. */
export function parseIommu(text: string | undefined): IommuChoice {
  const iommu = text ?? 'auto';
  if (iommu !== 'auto' && iommu !== 'iommufd' && iommu !== 'type1' && iommu !== 'noiommu') {
    throw new UsageError(`--iommu ${quote(iommu)}: expected auto, iommufd, type1 or noiommu`);
  }
  return iommu;
}
