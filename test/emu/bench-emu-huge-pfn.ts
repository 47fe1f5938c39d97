/**
 * Pure half of `npm run bench:emu`'s huge-PFN part: the emulated host's `HUGEPFN-RESULT {json}` line (printed by
 * bench/emu/huge-pfn-touch.mjs) → typed result → the table and the README subsection. No I/O: tested on its own.
 */
import { median } from './bench-emu-table.js';

/**
 * How a mapping was placed. The whole BAR through BarMapper: the library's request, the same moved by one page, or
 * `hugePfnAlign: false`. A mapping one page into the BAR: hugePfnPlacement, size-only alignment, or none.
 */
export type HugePfnPlacementName =
  | 'library' | 'misplaced' | 'unplaced'
  | 'offset-library' | 'offset-size-only' | 'offset-unplaced';
export const HUGE_PFN_PLACEMENTS: readonly HugePfnPlacementName[] = [
  'library', 'misplaced', 'unplaced', 'offset-library', 'offset-size-only', 'offset-unplaced',
];

const PLACEMENT_LABELS: Record<HugePfnPlacementName, string> = {
  'library': 'whole BAR, BarMapper: the library\'s placement (`hugePfnPlacement`)',
  'misplaced': 'whole BAR, BarMapper: the library\'s request + one page',
  'unplaced': 'whole BAR, BarMapper `hugePfnAlign: false` (mmap\'s choice)',
  'offset-library': 'one page into the BAR: `hugePfnPlacement`',
  'offset-size-only': 'one page into the BAR: aligned by size (`hugePfnAlignment`, QEMU\'s rule)',
  'offset-unplaced': 'one page into the BAR: mmap\'s choice',
};

/** The placement each row is compared with: the library's own in the same group. */
function baseOf(name: HugePfnPlacementName): HugePfnPlacementName {
  return name.startsWith('offset-') ? 'offset-library' : 'library';
}

/** One mapping, touched once: where it was, what the mapper asked mmap for, the faults and time of the touch loop. */
export interface HugePfnRound {
  address: string;
  addressModBlock: string;
  offsetModBlock: string;
  congruent: boolean;
  /** The placement the mapper asked for (hex), absent when it asked for none. */
  asked?: { align: string; alignOffset: string };
  /** Minor faults of the process over the loop. */
  faults: number;
  /** Wall time of the loop, milliseconds. */
  ms: number;
}

/** What the emulated host measured (the JSON of the `HUGEPFN-RESULT` line). */
export interface HugePfnResult {
  kernel: string;
  pageSize: number;
  node: string;
  /** /sys/kernel/mm/transparent_hugepage/enabled. */
  thp: string;
  bar: {
    index: number;
    size: string;
    fileOffset: string;
    physical: string;
    block: string | undefined;
    physicalModBlock: string | undefined;
    iommu: string;
  };
  placements: { name: HugePfnPlacementName; rounds: HugePfnRound[] }[];
}

/** One run of the huge-PFN part, as bench/emu-results.json keeps it under `hugePfn`. */
export interface HugePfnBench {
  date: string;
  outerSeconds: number;
  /** The outer QEMU's ivshmem backend, e.g. `memory-backend-ram size=1G`. */
  backend: string;
  result: HugePfnResult;
}

/** The emulated host's line was missing or reported a failure; `detail` says which. */
export class HugePfnParseError extends Error {
  constructor(readonly detail: string) {
    super(`bench:emu huge-pfn: ${detail}`);
    this.name = 'HugePfnParseError';
  }
}

/**
 * Reads the `HUGEPFN-RESULT` line of an outer log.
 * @throws HugePfnParseError when there is none, it says `ok: false`, or a placement has no rounds.
 */
export function parseHugePfnLog(log: string): HugePfnResult {
  const line = log.split('\n').map((l) => l.replace(/\r$/, '')).find((l) => l.startsWith('HUGEPFN-RESULT '));
  if (line === undefined) throw new HugePfnParseError('no HUGEPFN-RESULT line (the emulated host did not finish: see the log)');
  const parsed = JSON.parse(line.slice('HUGEPFN-RESULT '.length)) as
    | ({ ok: true } & HugePfnResult)
    | { ok: false; error: { message: string; code?: string } };
  if (!parsed.ok) throw new HugePfnParseError(`the touch script failed: ${parsed.error.code ?? ''} ${parsed.error.message}`.trim());
  const { ok: _ok, ...result } = parsed;
  for (const name of HUGE_PFN_PLACEMENTS) {
    const placement = result.placements.find((p) => p.name === name);
    if (!placement || placement.rounds.length === 0) throw new HugePfnParseError(`no rounds for placement ${name}`);
  }
  return result;
}

/** Thousands separators. */
function n(value: number): string {
  return value.toLocaleString('en-US');
}

/** `median unit (min–max)` of values, each formatted by `format`. */
function spread(values: number[], format: (v: number) => string, unit = ''): string {
  const m = median(values)!;
  if (values.length === 1 || Math.min(...values) === Math.max(...values)) return `${format(m)}${unit}`;
  return `${format(m)}${unit} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

function sizeName(hex: string | undefined): string {
  if (hex === undefined) return '–';
  const bytes = Number(BigInt(hex));
  return bytes >= 1 << 30 ? `${bytes / (1 << 30)} GiB` : bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes / 1024} KiB`;
}

/** Every address a placement got agreed (or disagreed) with the offset the same way: say so, or say "varies". */
function congruence(rounds: HugePfnRound[]): string {
  const all = new Set(rounds.map((r) => r.congruent));
  if (all.size > 1) return 'varies';
  return rounds[0]!.congruent ? 'yes' : 'no';
}

/**
 * The table: one row per placement, faults and loop time as the median round (min–max), the time ratio against the
 * library's placement of the same mapping, and whether the host address was congruent to the file offset modulo the
 * block.
 */
export function hugePfnTable(result: HugePfnResult): string {
  const block = sizeName(result.bar.block);
  const medianMs = (name: HugePfnPlacementName): number | undefined =>
    median(result.placements.find((p) => p.name === name)!.rounds.map((r) => r.ms));
  const rows = [
    `| placement | address mod ${block} (offset mod ${block}) | congruent | minor faults | touch time | time vs the library's |`,
    '|---|---|---|---|---|---|',
  ];
  for (const name of HUGE_PFN_PLACEMENTS) {
    const rounds = result.placements.find((p) => p.name === name)!.rounds;
    const mods = [...new Set(rounds.map((r) => `${r.addressModBlock} (${r.offsetModBlock})`))].join(', ');
    const faults = spread(rounds.map((r) => r.faults), n);
    const ms = spread(rounds.map((r) => r.ms), (v) => v.toFixed(1), ' ms');
    const base = medianMs(baseOf(name));
    const ratio = base === undefined || base === 0 ? '–' : `${(medianMs(name)! / base).toFixed(1)}×`;
    rows.push(`| ${PLACEMENT_LABELS[name]} | ${mods} | ${congruence(rounds)} | ${faults} | ${ms} | ${ratio} |`);
  }
  return rows.join('\n');
}

/** Words of `text` in lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.join('\n');
}

/** The README subsection (inside the bench:emu markers) for one huge-PFN run. */
export function hugePfnSection(bench: HugePfnBench): string {
  const { result } = bench;
  const pages = Number(BigInt(result.bar.size)) / result.pageSize;
  const rounds = result.placements[0]!.rounds.length;
  const { bar } = result;
  const prose = [
    `One boot of the emulated ${result.pageSize / 1024} KiB-page aarch64 host on Linux ${result.kernel} (TCG), built with`,
    `transparent huge pages (\`${result.thp}\`; arm64 has huge PFN maps only with them), and QEMU's \`ivshmem-plain\``,
    `(\`${bench.backend}\`) bound to vfio-pci (${bar.iommu}): its BAR${bar.index} is ${sizeName(bar.size)} of RAM,`,
    `64-bit prefetchable, at ${bar.physical} (${bar.physicalModBlock ?? '?'} mod ${sizeName(bar.block)}, the PMD block of`,
    `${result.pageSize / 1024} KiB pages). A node script maps BAR${bar.index} as a VMM would (VfioDevice.open,`,
    'planBarMappings, KvmVm, `BarMapper.map`: one mmap, one KVM slot) and reads one byte per host page',
    `(${n(pages)} pages). "Minor faults" is \`process.resourceUsage().minorPageFault\` over that loop (vfio-pci's`,
    '`fault` and `huge_fault` handlers count there), "touch time" its wall time under TCG; each is the median of',
    `${rounds} rounds (min–max), the placements interleaved after one warm-up round (the outer QEMU allocates the`,
    'backend on first touch). The misplaced mapping is the mapper\'s own request with its `alignOffset` moved by one',
    'page (a Syscalls wrapper; the mapper is unchanged): vfio-pci then finds no PMD whose PFN is block-aligned and',
    'falls back to one fault per page. The last three rows map the BAR from one page in (`realSyscalls().mmap`), as',
    'the direct mapping after an MSI-X hole at a BAR\'s start would be: its length is no multiple of the block, so',
    'the kernel does not place it by itself (6.12 with THP places a file mmap congruent to its offset when the length',
    'is a PMD multiple: the whole-BAR "mmap\'s choice" row), and aligning by size puts it one page off. Where mmap',
    'puts the offset mapping depends on the holes earlier mappings left (top-down, a mapping that ends on a block',
    'boundary is congruent by luck): the "congruent" column says which it got in this run. Timings are noisy (two',
    'cores shared with other work); the fault counts of the placed rows repeat run after run. Not run by CI; raw',
    'numbers under `hugePfn` in `bench/emu-results.json`.',
    `Last run ${bench.date.slice(0, 10)}, outer boot ${bench.outerSeconds.toFixed(0)} s.`,
  ].join(' ');
  return [
    '### Huge-PFN placement of a 1 GiB BAR on Linux 6.12 (`npm run bench:emu -- huge-pfn`)',
    '',
    wrap(prose, 116),
    '',
    hugePfnTable(result),
  ].join('\n');
}
