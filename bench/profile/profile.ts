/**
 * Profiling driver for the library side of one bench case (not part of `npm run bench`): runs the case's
 * rounds with realSyscalls and prints user/system CPU and wall time per operation (medians over rounds),
 * so a JavaScript change can be measured without the C side, and run under `node --cpu-prof`.
 *
 *   npm run build && npx tsc -p tsconfig.bench.json
 *   node bench/.out/profile/profile.js map-unmap [rounds] [scale]
 *   node bench/.out/profile/profile.js map-unmap 15 1 --null-kernel   # JavaScript only, no kernel
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/.out/profile/profile.js noop
 */
import { loadavg } from 'node:os';
import { realSyscalls } from 'vfio-bars';
import { benchCases } from '../cases.js';
import { spread } from '../runner.js';
import { nullKernel } from './null-kernel.js';

// --null-kernel: every system call answers at once without the kernel (the library's JavaScript alone).
const nullMode = process.argv.includes('--null-kernel');
const [id = 'map-unmap', roundsArg = '15', scaleArg = '1'] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const bench = benchCases(Number(scaleArg)).find((c) => c.id === id);
if (!bench) throw new RangeError(`no bench case ${id}; ids: ${benchCases().map((c) => c.id).join(', ')}`);
const ops = bench.iterations * (bench.opsPerIteration ?? 1);
const side = bench.lib(nullMode ? nullKernel() : realSyscalls(), '/bin/false');
await side.setup();
await side.round(Math.max(1, Math.floor(bench.iterations / 4)));
const user: number[] = [];
const system: number[] = [];
const wall: number[] = [];
for (let r = 0; r < Number(roundsArg); r++) {
  const cpu0 = process.cpuUsage();
  wall.push(await side.round(bench.iterations));
  const cpu = process.cpuUsage(cpu0);
  user.push((cpu.user * 1000) / ops);
  system.push((cpu.system * 1000) / ops);
}
if (process.env.PROFILE_ROUNDS) console.log(user.map((u) => (u / 1000).toFixed(0)).join(" "));
await side.teardown();
const show = (ns: number[]): string => {
  const s = spread(ns);
  return `${s.median.toFixed(0)} ns ±${((s.relIqr / 2) * 100).toFixed(0)}%`;
};
console.log(`${id}${nullMode ? ' (null kernel)' : ''}: wall ${show(wall)}, user ${show(user)}, system ${show(system)} per op ` +
  `(${Number(roundsArg)} rounds of ${bench.iterations}; load ${loadavg().map((l) => l.toFixed(1)).join(' ')})`);
