/**
 * Runs a case like for like: the library and the long-lived C baseline each set up once, then interleaved
 * rounds (the side going first alternates), then medians and interquartile ranges.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { pinThread } from './affinity.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { realSyscalls } from 'vfio-bars';
import { countingSyscalls, rssKiB, type BenchCase } from './cases.js';

/** Median, quartiles and spread of a sample (linear interpolation between order statistics). */
export interface Spread {
  readonly median: number;
  readonly q1: number;
  readonly q3: number;
  /** Interquartile range relative to the median (0.1 = 10 %). */
  readonly relIqr: number;
}

export function spread(samples: readonly number[]): Spread {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => {
    const pos = (sorted.length - 1) * q;
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
  };
  const median = at(0.5);
  const q1 = at(0.25);
  const q3 = at(0.75);
  return { median, q1, q3, relIqr: median === 0 ? 0 : (q3 - q1) / median };
}

/** The C baseline as a long-lived process (bench/c/kvm-bench.c), one request line, one answer line. */
export class CBaseline {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  readonly binary: string;

  private constructor(binary: string) {
    this.binary = binary;
    this.#child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }

  /** Compiles the C program (cc -O2) into a temporary folder and starts it. */
  static start(sourceDir: string): CBaseline {
    const binary = path.join(mkdtempSync(path.join(tmpdir(), 'vfio-bars-bench-')), 'kvm-bench');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-pthread', '-o', binary, path.join(sourceDir, 'c', 'kvm-bench.c')]);
    return new CBaseline(binary);
  }

  /** Pins the C program's calling thread to `cpu`, or unpins it (undefined). */
  async pin(cpu: number | undefined): Promise<void> {
    await this.request(`pin ${cpu ?? -1}`);
  }

  async request(line: string): Promise<string> {
    this.#child.stdin.write(`${line}\n`);
    const answer = await this.#lines.next();
    if (answer.done === true) throw new RangeError(`C baseline exited during "${line}" (code ${this.#child.exitCode})`);
    return answer.value;
  }

  /** One timed round: wall-clock, user and system CPU time, ns per operation. */
  async round(iterations: number): Promise<RoundTimes> {
    const [wall, user, system] = (await this.request(`run ${iterations}`)).split(' ').map(Number);
    return { wall: wall!, user: user!, system: system! };
  }

  /**
   * Hands `vmFd` to a fresh C process (inherited as fd 3) and returns what one slot ioctl on it answers:
   * "EIO" where KVM refuses VM ioctls from a process other than the VM's creator.
   */
  trySharedVmFd(vmFd: number): string {
    return execFileSync(this.binary, ['--shared-vm-fd', '3'], { stdio: ['ignore', 'pipe', 'inherit', vmFd], encoding: 'utf8' }).trim();
  }

  close(): void {
    this.#child.stdin.end();
  }
}

/** ns per operation of one round. */
export interface RoundTimes {
  readonly wall: number;
  readonly user: number;
  readonly system: number;
}

/** Times one library round with its CPU time (process.cpuUsage: the whole process, at tick resolution). */
async function libRound(side: ReturnType<BenchCase['lib']>, iterations: number, opsPerIteration: number): Promise<RoundTimes> {
  const cpu0 = process.cpuUsage();
  const wall = await side.round(iterations);
  const cpu = process.cpuUsage(cpu0);
  const ops = iterations * opsPerIteration;
  return { wall, user: (cpu.user * 1000) / ops, system: (cpu.system * 1000) / ops };
}

/** Medians of user and system CPU time per operation: where the wall-clock time goes (the rest is waiting). */
export interface CpuSplit {
  readonly user: number;
  readonly system: number;
}

function cpuSplit(rounds: readonly RoundTimes[]): CpuSplit {
  return { user: spread(rounds.map((r) => r.user)).median, system: spread(rounds.map((r) => r.system)).median };
}

export interface CaseResult {
  readonly id: string;
  readonly name: string;
  readonly kind: BenchCase['kind'];
  readonly conditions: string;
  readonly iterations: number;
  readonly rounds: number;
  readonly lib: Spread;
  readonly c: Spread;
  /** Ratio of the medians (library / C). */
  readonly ratio: number;
  /** Spread of the per-round ratios (each round's library figure over the C figure next to it). */
  readonly roundRatio: Spread;
  /** User and system CPU per operation, medians over rounds (wall-clock minus both is time spent waiting). */
  readonly cpu: { readonly lib: CpuSplit; readonly c: CpuSplit };
  /**
   * C against itself: the median of its even rounds over its odd rounds. How far a ratio can stray
   * from 1.0 with identical code on both sides, in this run.
   */
  readonly cSelfRatio: number;
  readonly target?: number;
  readonly pass?: boolean;
  /**
   * Calls per iteration: the library's counted through its Syscalls (an untimed pass), the C program's by
   * construction. Where they differ, the ratio measures different work, not overhead.
   */
  readonly calls: { readonly lib: Readonly<Record<string, number>>; readonly c: Readonly<Record<string, number>> };
  /** The library's counted pass: ns per op inside its system calls, and the pass's wall-clock ns per op. */
  readonly inside: { readonly insideNs: number; readonly wallNs: number };
  /** RSS of this process before the first and after the last library round. */
  readonly rssKiB: { readonly before: number; readonly after: number };
}

/**
 * Warm-up round, then `rounds` interleaved rounds; each round is `iterations` operations per side. With
 * `bench.cpu`, both sides' calling threads run on that CPU throughout (the counted pass too).
 */
export async function runCase(bench: BenchCase, c: CBaseline, rounds: number): Promise<CaseResult> {
  if (bench.cpu === undefined) return runCaseHere(bench, c, rounds);
  pinThread(bench.cpu);
  await c.pin(bench.cpu);
  try {
    return await runCaseHere(bench, c, rounds);
  } finally {
    pinThread(undefined);
    await c.pin(undefined);
  }
}

async function runCaseHere(bench: BenchCase, c: CBaseline, rounds: number): Promise<CaseResult> {
  const lib = bench.lib(realSyscalls(), c.binary);
  const libTimes: RoundTimes[] = [];
  const cTimes: RoundTimes[] = [];
  let rssBefore = 0;
  let rssAfter = 0;
  // Teardown also on failure: a case owns fds, eventfds, irqfds, routes and processes.
  await lib.setup();
  try {
    await c.request(`setup ${bench.c.case} ${bench.c.slots}`);
    const warmUp = Math.max(1, Math.floor(bench.iterations / 4));
    await lib.round(warmUp);
    await c.round(warmUp);
    rssBefore = rssKiB();
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) {
        libTimes.push(await libRound(lib, bench.iterations, bench.opsPerIteration ?? 1));
        cTimes.push(await c.round(bench.iterations));
      } else {
        cTimes.push(await c.round(bench.iterations));
        libTimes.push(await libRound(lib, bench.iterations, bench.opsPerIteration ?? 1));
      }
    }
    rssAfter = rssKiB();
  } finally {
    await lib.teardown();
  }
  await c.request('teardown');
  const libNs = libTimes.map((t) => t.wall);
  const cNs = cTimes.map((t) => t.wall);
  const libSpread = spread(libNs);
  const cSpread = spread(cNs);
  const ratio = libSpread.median / cSpread.median;
  return {
    id: bench.id, name: bench.name, kind: bench.kind, conditions: bench.conditions, iterations: bench.iterations, rounds,
    lib: libSpread, c: cSpread, ratio,
    roundRatio: spread(libNs.map((ns, i) => ns / cNs[i]!)),
    cpu: { lib: cpuSplit(libTimes), c: cpuSplit(cTimes) },
    cSelfRatio: spread(cNs.filter((_, i) => i % 2 === 0)).median / spread(cNs.filter((_, i) => i % 2 === 1)).median,
    ...(bench.target === undefined ? {} : { target: bench.target, pass: ratio <= bench.target }),
    ...(await counted(bench, c.binary)),
    rssKiB: { before: rssBefore, after: rssAfter },
  };
}

async function counted(bench: BenchCase, cBinary: string): Promise<Pick<CaseResult, 'calls' | 'inside'>> {
  const pass = await countCalls(bench, cBinary);
  return { calls: { lib: pass.calls, c: bench.cCalls }, inside: { insideNs: pass.insideNs, wallNs: pass.wallNs } };
}

/** What the counted pass found: calls per iteration, and the share of the wall-clock time spent inside them. */
export interface CountedPass {
  readonly calls: Record<string, number>;
  /** ns per operation inside the Syscalls calls (the kernel plus the FFI call itself). */
  readonly insideNs: number;
  /** ns per operation of the counted pass, all included (the proxy adds a little). */
  readonly wallNs: number;
}

/** The library's calls per iteration and time inside them, after setup and one uncounted iteration. */
async function countCalls(bench: BenchCase, cBinary: string): Promise<CountedPass> {
  const { syscalls, counts, insideNs } = countingSyscalls(realSyscalls());
  const side = bench.lib(syscalls, cBinary);
  const iterations = Math.max(4, Math.round(bench.iterations / 5));
  await side.setup(); // a side's setup releases what it made when it fails
  try {
    await side.round(1);
    counts.clear();
    insideNs.total = 0;
    const wallNs = await side.round(iterations);
    const calls = Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, v / iterations]));
    return { calls, insideNs: insideNs.total / (iterations * (bench.opsPerIteration ?? 1)), wallNs };
  } finally {
    await side.teardown();
  }
}
