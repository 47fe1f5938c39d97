/**
 * Pure half of `npm run bench:emu`: the nested-guest console log of one outer boot → per-VMM results →
 * the side-by-side table (markdown) and the README section it regenerates. No I/O: tested on its own.
 */

/** Counts between the guest's markers (`window`) or over the whole nested run, as the VMM reported them. */
export interface BenchCounts {
  mmioExits: number;
  consoleExits: number;
  trappedReads: number;
  trappedWrites: number;
  trappedAccesses: number;
}

export interface BenchRun {
  name: BenchConfig;
  /** What ran: the VMM and its vfio-pci options. */
  label: string;
  windowSeen: boolean;
  window: BenchCounts;
  whole: BenchCounts;
  /** Rounds of the two reads inside the window (the counts in `window` cover all of them). */
  rounds: number;
  /** `dd bs=1M count=16 iflag=direct` and `dd bs=4k count=4096 iflag=direct`: the guest's clock, one value per round. */
  dd1m: number[];
  dd4k: number[];
  /** Wall seconds of the nested run inside the emulated host (its uptime at start and exit). */
  runSeconds: number | undefined;
}

export type BenchConfig = 'qemu-default' | 'qemu-relo-bar0' | 'example-vmm';
export const BENCH_CONFIGS: readonly BenchConfig[] = ['qemu-default', 'qemu-relo-bar0', 'example-vmm'];
const LABELS: Record<BenchConfig, string> = {
  'qemu-default': 'QEMU 7.2, `vfio-pci` default',
  'qemu-relo-bar0': 'QEMU 7.2, `x-msix-relocation=bar0`',
  'example-vmm': 'example VMM (vfio-bars)',
};

/** Why a run's lines could not be read: the config and what was missing. */
export class BenchParseError extends Error {
  constructor(readonly config: string, readonly missing: string) {
    super(`bench:emu ${config}: ${missing}`);
  }
}

/** Splits the outer log at `BENCH-RUN <name> start` lines and reads each run's result, dd times and uptimes. */
export function parseBenchLog(log: string): BenchRun[] {
  const runs: BenchRun[] = [];
  const lines = log.split('\n').map((l) => l.replace(/\r$/, ''));
  for (const config of BENCH_CONFIGS) {
    const start = lines.findIndex((l) => l.startsWith(`BENCH-RUN ${config} start`));
    if (start < 0) continue;
    const end = lines.findIndex((l, i) => i > start && l.startsWith(`BENCH-RUN ${config} exit`));
    const body = lines.slice(start, end < 0 ? undefined : end + 2);
    const result = body.find((l) => l.startsWith('BENCH-RESULT '));
    if (!result) throw new BenchParseError(config, 'no BENCH-RESULT line (the nested run failed: see the log)');
    const parsed = JSON.parse(result.slice('BENCH-RESULT '.length)) as Pick<BenchRun, 'windowSeen' | 'window' | 'whole'>;
    runs.push({
      name: config,
      label: LABELS[config],
      windowSeen: parsed.windowSeen,
      window: parsed.window,
      whole: parsed.whole,
      rounds: rounds(body),
      dd1m: ddSeconds(body, 'BENCH-DD-1M'),
      dd4k: ddSeconds(body, 'BENCH-DD-4K'),
      runSeconds: uptime(lines[end]) !== undefined ? uptime(lines[end])! - uptime(lines[start])! : undefined,
    });
  }
  return runs;
}

/** The guest timed dd itself: `BENCH-DD-4K rounds=3 seconds=5.24,5.10,5.31 …`. */
function ddSeconds(body: string[], marker: string): number[] {
  const line = body.find((l) => l.startsWith(`${marker} `));
  const m = line === undefined ? null : /seconds=([\d.,]+)/.exec(line);
  return m ? m[1]!.split(',').filter((v) => v !== '').map(Number) : [];
}

function rounds(body: string[]): number {
  const m = /BENCH-DD-1M rounds=(\d+)/.exec(body.join('\n'));
  return m ? Number(m[1]) : 1;
}

/** The middle value (the lower middle of an even count); undefined for none. */
export function median(values: number[]): number | undefined {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function uptime(line: string | undefined): number | undefined {
  const m = line === undefined ? null : /uptime=([\d.]+)/.exec(line);
  return m ? Number(m[1]) : undefined;
}

/** `a / b` with two decimals, or a dash when b is 0 or either is unknown. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

/** `median s (min–max)`. */
function seconds(values: number[]): string {
  if (values.length === 0) return '–';
  const m = median(values)!;
  if (values.length === 1) return `${m.toFixed(2)} s`;
  return `${m.toFixed(2)} s (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
}

/** Thousands separators: the table is read by people. */
function n(value: number): string {
  return value.toLocaleString('en-US');
}

/**
 * The side-by-side table. Counts are between the guest's markers, so they cover exactly the dd runs, and are
 * given per round (one `bs=1M` and one `bs=4k` read); console exits (the END marker's bytes) are left out of
 * "MMIO exits". Times are the median round (min–max). Ratios are against QEMU with its
 * default options in the same outer boot (the example VMM's window can have no exit at all: no base for a ratio).
 */
export function benchTable(runs: BenchRun[]): string {
  const base = runs.find((r) => r.name === 'qemu-default');
  const perRound = (value: number, r: BenchRun): number => Math.round(value / r.rounds);
  const exits = (r: BenchRun): number => perRound(r.window.mmioExits - r.window.consoleExits, r);
  const rows = [
    '| VMM | trapped BAR accesses | MMIO exits to the VMM | `dd bs=1M` | `dd bs=4k iflag=direct` '
      + '| exits vs QEMU default | `bs=4k` time vs QEMU default |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of runs) {
    const w = r.window;
    const reads = n(perRound(w.trappedReads, r));
    const writes = n(perRound(w.trappedWrites, r));
    const trapped = `${n(perRound(w.trappedAccesses, r))} (${reads} reads, ${writes} writes)`;
    rows.push(`| ${r.label} | ${trapped} | ${n(exits(r))} | ${seconds(r.dd1m)} | ${seconds(r.dd4k)} `
      + `| ${base ? ratio(exits(r), exits(base)) : '–'} | ${base ? ratio(median(r.dd4k), median(base.dd4k)) : '–'} |`);
  }
  return rows.join('\n');
}

/** Whole nested runs (boot, probe, the reads, power-off): the context of the table. */
export function wholeRunTable(runs: BenchRun[]): string {
  const rows = ['| VMM | trapped BAR accesses | MMIO exits | of which console | nested run |', '|---|---|---|---|---|'];
  for (const r of runs) {
    rows.push(`| ${r.label} | ${n(r.whole.trappedAccesses)} | ${n(r.whole.mmioExits)} | ${n(r.whole.consoleExits)} `
      + `| ${r.runSeconds === undefined ? '–' : `${r.runSeconds.toFixed(1)} s`} |`);
  }
  return rows.join('\n');
}

export const README_BEGIN = '<!-- bench:emu begin: regenerated by `npm run bench:emu` -->';
export const README_END = '<!-- bench:emu end -->';

/** Replaces the text between the markers (or inserts the marked section before `## Limits`). */
export function replaceReadmeSection(readme: string, section: string): string {
  const marked = `${README_BEGIN}\n${section.trim()}\n${README_END}`;
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin >= 0 && end > begin) return readme.slice(0, begin) + marked + readme.slice(end + README_END.length);
  const limits = readme.indexOf('\n## Limits');
  if (limits < 0) return `${readme.trimEnd()}\n\n${marked}\n`;
  return `${readme.slice(0, limits)}\n${marked}\n${readme.slice(limits)}`;
}

/** The nested-guest part of bench/emu-results.json (written by bench-emu.run.ts). */
export interface NestedBenchResults {
  date: string;
  /** `QEMU emulator version …` of the nested QEMU. */
  nestedQemu: string;
  outerSeconds: number;
  runs: BenchRun[];
}

/** The README subsection of the nested-guest comparison: how it was measured, then both tables. */
export function nestedSection(results: NestedBenchResults): string {
  const { date, nestedQemu: host, outerSeconds, runs } = results;
  return [
    '### Inside the emulated host: QEMU side by side with the example VMM (`npm run bench:emu`)',
    '',
    'One boot of the emulated 64 KiB aarch64 host (TCG, SMMUv3) with QEMU\'s NVMe (16 KiB BAR0, MSI-X table at',
    `+0x2000) bound to vfio-pci; the same nested guest (4 KiB-page Linux 6.1, busybox) runs under Debian's arm64 ${host}`,
    'and under the example VMM (which gives BAR0 one direct slot), and between two console markers reads the disk in three',
    'rounds of `dd bs=1M count=16 iflag=direct` then `dd bs=4k count=4096 iflag=direct` (16 MiB each). Counts cover that',
    'window only and are given per round:',
    'trapped BAR accesses are those the VMM served itself (QEMU: its `memory_region_ram_device_*` and `vfio_region_*`',
    'trace; the example: its own counter), MMIO exits are QEMU\'s `kvm_run_exit` with reason MMIO or the example\'s bus',
    'dispatches, minus the console\'s (the END marker\'s bytes). dd times are the guest\'s clock (10 ms resolution: busybox',
    '`date` has no `%N`), median round (min–max); under TCG on two shared cores they are slow and noisy in absolute',
    'terms: read the ratios, measured in one outer boot, against QEMU with its default options. QEMU runs with those trace',
    'events on in both configurations; a trace line is a buffered write, far below the cost of an exit here.',
    'Not run by CI. It prepares what it boots (cached in `$VFIO_BARS_CACHE`): the tier\'s kernels and initramfs',
    '(`test/emu/prepare.sh`) and Debian\'s arm64 QEMU with its library closure (`bench/emu/prepare-qemu-arm64.sh`).',
    `Last run ${date.slice(0, 10)}, outer boot ${outerSeconds.toFixed(0)} s; raw numbers in \`bench/emu-results.json\`.`,
    '',
    benchTable(runs),
    '',
    'Whole nested runs (boot, NVMe probe, the reads, power-off):',
    '',
    wholeRunTable(runs),
  ].join('\n');
}
