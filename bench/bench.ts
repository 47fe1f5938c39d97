/**
 * The whole benchmark: every case of cases.ts like for like against C, then the figures with no C
 * counterpart (per-op growth with 10 000 slots, RSS, import time).
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { KvmVm } from 'vfio-bars';
import { PAGE, benchCases } from './cases.js';
import { formatNs, type BenchResults, type DerivedResult } from './report.js';
import { CBaseline, runCase, spread, type CaseResult } from './runner.js';

export interface BenchOptions {
  /** Multiplies every case's iteration count (the smoke test uses a tiny one). */
  readonly scale: number;
  readonly rounds: number;
  /** Directory holding c/kvm-bench.c. */
  readonly sourceDir: string;
  /** The built package entry to time the import of; skipped when undefined. */
  readonly importEntry?: string;
  readonly log?: (line: string) => void;
}

export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const c = CBaseline.start(options.sourceDir);
  const cases: CaseResult[] = [];
  const derived: DerivedResult[] = [];
  try {
    derived.push(sharedVmFd(c));
    for (const bench of benchCases(options.scale)) {
      const result = await runCase(bench, c, options.rounds);
      const figures = `library ${result.lib.median.toFixed(0)} ns, C ${result.c.median.toFixed(0)} ns`;
      options.log?.(`${bench.name}: ${figures}, ratio ${result.ratio.toFixed(2)}`);
      cases.push(result);
    }
  } finally {
    c.close();
  }
  derived.push(...slotGrowth(cases), ...relayCost(cases));
  if (options.importEntry !== undefined) derived.push(importTime(options.importEntry));
  return {
    machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, page ${PAGE}`,
    date: new Date().toISOString(),
    loadAverage: loadavg(),
    rounds: options.rounds,
    cases,
    derived,
  };
}

/** Whether the C baseline could drive the library's own VM: KVM answers EIO to any other process. */
function sharedVmFd(c: CBaseline): DerivedResult {
  using vm = KvmVm.create();
  const answer = c.trySharedVmFd(vm.fd);
  return {
    name: 'the library\'s VM fd, inherited by a C child', value: `KVM_SET_USER_MEMORY_REGION → ${answer}`,
    note: 'KVM serves VM ioctls only from the creating process, so the C baseline keeps a VM of its own',
  };
}

/** Per-move growth from 100 to 10 000 slots (library and C) and RSS over the 10 000-slot rounds. */
function slotGrowth(cases: readonly CaseResult[]): DerivedResult[] {
  const small = cases.find((r) => r.id === 'move-100');
  const large = cases.find((r) => r.id === 'move-10000');
  if (!small || !large) return [];
  const growth = large.lib.median / small.lib.median;
  const cGrowth = large.c.median / small.c.median;
  const rss = large.rssKiB.after - large.rssKiB.before;
  return [
    {
      name: 'per-move growth, 100 → 10 000 slots', value: growth.toFixed(2), target: '≤ 1.2', pass: growth <= 1.2,
      note: `C in the same run: ${cGrowth.toFixed(2)} (the kernel's own growth and the machine's noise)`,
    },
    { name: 'RSS growth over the 10 000-slot rounds', value: `${rss} KiB`, target: '< 2048 KiB', pass: rss < 2048,
      note: `${large.rounds * large.iterations} moves` },
  ];
}

/** Each JavaScript relay against direct irqfd delivery (relay median over direct median, per side). */
function relayCost(cases: readonly CaseResult[]): DerivedResult[] {
  const direct = cases.find((r) => r.id === 'msi');
  if (!direct) return [];
  return cases.filter((r) => r.id.startsWith('msi-relay')).map((relay) => ({
    name: `${relay.name.replace('MSI latency, ', '')} / direct irqfd`, value: (relay.lib.median / direct.lib.median).toFixed(2),
    note: `library relay ${formatNs(relay.lib.median)} over library direct ${formatNs(direct.lib.median)}; ` +
      `C relay over C direct in the same run: ${(relay.c.median / direct.c.median).toFixed(2)}; no goal`,
  }));
}

/** `import('vfio-bars')` in a cold process, against importing node:os alone. */
function importTime(entry: string): DerivedResult {
  const sample = (what: string): number => Number(execFileSync(process.execPath,
    ['--input-type=module', '-e', `const t=performance.now(); await import(${JSON.stringify(what)}); console.log(performance.now()-t)`],
    { encoding: 'utf8' }));
  const lib = spread(Array.from({ length: 5 }, () => sample(path.resolve(entry))));
  const base = spread(Array.from({ length: 5 }, () => sample('node:os')));
  const note = `node:os alone: ${base.median.toFixed(1)} ms`;
  return { name: '`import(\'vfio-bars\')`, cold process', value: `${lib.median.toFixed(1)} ms`, note };
}
