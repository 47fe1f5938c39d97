/**
 * Some cases of `npm run bench` through the bench's own runner (runCase: interleaved rounds against the
 * C baseline, CPU split, the counted pass), printed without touching bench/results.json or the README.
 *
 *   node bench/.out/profile/cases.js [rounds] id...      e.g. node bench/.out/profile/cases.js 9 noop map-unmap
 *   node bench/.out/profile/cases.js --warm 9 map-unmap  first runs the library side ~1 s untimed (JIT warm)
 *
 * Slot changes that wait for KVM's SRCU grace period (move, add/delete, map/unmap) cost several times more
 * on one CPU than on the other of this machine, for C and Node alike (`taskset -c 0` / `-c 1` on either
 * side): which CPU each side runs on decides those ratios more than its code does. Compare them pinned.
 */
import { loadavg } from 'node:os';
import path from 'node:path';
import { realSyscalls } from 'vfio-bars';
import { benchCases, type BenchCase } from '../cases.js';
import { CBaseline, runCase } from '../runner.js';

const warm = process.argv.includes('--warm');
const [roundsArg = '9', ...ids] = process.argv.slice(2).filter((a) => a !== '--warm');

/** Runs the library side untimed for about `ms` so V8 has compiled its hot code before the timed rounds. */
async function warmUp(bench: BenchCase, cBinary: string, ms: number): Promise<void> {
  const side = bench.lib(realSyscalls(), cBinary);
  await side.setup();
  const until = performance.now() + ms;
  while (performance.now() < until) await side.round(bench.iterations);
  await side.teardown();
}

// bench/.out/profile → bench/ is two levels up.
const c = CBaseline.start(path.resolve(import.meta.dirname, '..', '..'));
const ns = (value: number): string => (value >= 10_000 ? `${(value / 1000).toFixed(1)} µs` : `${value.toFixed(0)} ns`);
try {
  for (const bench of benchCases().filter((b) => ids.length === 0 || ids.includes(b.id))) {
    if (warm) await warmUp(bench, c.binary, 1000);
    const r = await runCase(bench, c, Number(roundsArg));
    const cpu = `user/system library ${ns(r.cpu.lib.user)}/${ns(r.cpu.lib.system)}, C ${ns(r.cpu.c.user)}/${ns(r.cpu.c.system)}`;
    const label = `${r.id}${warm ? ' (JIT warmed)' : ''}`;
    console.log(`${label}: library ${ns(r.lib.median)} ±${(r.lib.relIqr * 50).toFixed(0)}%, C ${ns(r.c.median)} ` +
      `±${(r.c.relIqr * 50).toFixed(0)}%, ratio ${r.ratio.toFixed(2)} (C vs C ${r.cSelfRatio.toFixed(2)}); ${cpu}; ` +
      `counted pass: ${ns(r.inside.insideNs)} inside system calls of ${ns(r.inside.wallNs)}; ` +
      `load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  }
} finally {
  c.close();
}
