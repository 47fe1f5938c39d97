// `npm run bench`: each hot path of the library next to a C program making the same syscalls, in the
// same run, on the same machine. Prints a table and writes bench/results.json.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { BarMapper, KvmVm, PROT, planBarMappings, realSyscalls } from '../dist/index.js';

const here = import.meta.dirname;
const sys = realSyscalls();
const PAGE = BigInt(sys.pageSize());
const BASE = 0x1_0000_0000n;
const MOVED = 0x2_0000_0000n;

function buildC() {
  const binary = path.join(mkdtempSync(path.join(tmpdir(), 'vfio-bars-bench-')), 'kvm-bench');
  execFileSync('cc', ['-O2', '-Wall', '-o', binary, path.join(here, 'c', 'kvm-bench.c')]);
  return binary;
}

function c(binary, name, iterations, slots = 1) {
  return JSON.parse(execFileSync(binary, [name, String(iterations), String(slots)], { encoding: 'utf8' })).nsPerOp;
}

function hostMemory(size) {
  const fd = sys.memfdCreate('bench', 0);
  sys.ftruncate(fd, size);
  const m = sys.mmap(fd, 0n, size, PROT.READ | PROT.WRITE);
  sys.close(fd);
  return m;
}

/** KVM slot updates wait for SRCU grace periods, so single runs are noisy: alternate library and C runs. */
const ROUNDS = 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function compare(iterations, libRound, cRound) {
  const lib = [];
  const cc = [];
  for (let r = 0; r < ROUNDS; r++) {
    lib.push(time(iterations, libRound));
    cc.push(cRound());
  }
  return [median(lib), median(cc)];
}

function time(iterations, fn) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / iterations;
}

/** A device handle over memfds, one per BAR, each region at its own file. */
function memfdDevice(bars) {
  const fd = sys.memfdCreate('bench-bars', 0);
  sys.ftruncate(fd, BigInt(bars) * 4n * PAGE);
  const description = {
    bdf: 'bench', flags: 3, numRegions: bars, numIrqs: 0, irqs: [],
    regions: Array.from({ length: bars }, (_, i) => ({ index: i, flags: 7, size: 4n * PAGE, offset: BigInt(i) * 4n * PAGE, capabilities: [] })),
    bars: Array.from({ length: bars }, (_, i) => ({ index: i, kind: 'memory', is64Bit: false, prefetchable: false, address: 0n })),
  };
  return { bdf: 'bench', fd, syscalls: sys, dma: undefined, iommuMode: 'noiommu', describe: () => description, close: () => sys.close(fd) };
}

function rssKiB() {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
}

const results = [];
const record = (name, libNs, cNs, target, extra = {}) => {
  const ratio = libNs / cNs;
  results.push({ name, libNsPerOp: Math.round(libNs), cNsPerOp: Math.round(cNs), ratio: Number(ratio.toFixed(3)), target, pass: target === undefined ? undefined : ratio <= target, ...extra });
};

const binary = buildC();

{ // no-op re-set: an identical KVM_SET_USER_MEMORY_REGION (KVM answers 0 without changing anything)
  const mem = hostMemory(PAGE);
  const vm = KvmVm.create();
  const slot = vm.addSlot({ guestPhysAddr: BASE, memorySize: PAGE, userspaceAddr: mem.address });
  const n = 100_000;
  time(10_000, () => vm.moveSlot(slot, BASE));
  record('no-op KVM_SET_USER_MEMORY_REGION', ...compare(n, () => vm.moveSlot(slot, BASE), () => c(binary, 'noop', n)), 1.25);
  vm.close();
  sys.munmap(mem);
}

{ // add + delete of one slot
  const mem = hostMemory(PAGE);
  const vm = KvmVm.create();
  const n = 1_000;
  record('add+delete slot', ...compare(n, () => vm.removeSlot(vm.addSlot({ guestPhysAddr: BASE, memorySize: PAGE, userspaceAddr: mem.address })), () => c(binary, 'add-delete', n)));
  vm.close();
  sys.munmap(mem);
}

for (const mappings of [1, 4]) { // BAR move of a plan with N mappings (per slot moved)
  const device = memfdDevice(1);
  const d = device.describe();
  // N page-sized mappings: a sparse region with N separated areas.
  d.regions[0].size = BigInt(2 * mappings) * PAGE;
  d.regions[0].capabilities = [{ kind: 'sparse-mmap', id: 1, version: 1, areas: Array.from({ length: mappings }, (_, i) => ({ offset: BigInt(2 * i) * PAGE, size: PAGE })) }];
  d.regions[0].flags = 0xf;
  sys.ftruncate(device.fd, d.regions[0].size);
  const vm = KvmVm.create();
  const mapper = new BarMapper(device, vm, { hugePfnAlign: false });
  mapper.map(planBarMappings(d, { pageSize: PAGE, barAddresses: { 0: BASE } }));
  const n = 1_000;
  const [lib, cc] = compare(n, (i) => mapper.move(0, i % 2 === 0 ? MOVED : BASE), () => c(binary, 'move', n, mappings) * mappings);
  record(`BAR move, ${mappings} mapping(s)`, lib, cc, 1.05);
  mapper.unmapAll();
  vm.close();
  device.close();
}

{ // map + unmap of a 6-BAR plan on memfd regions
  const device = memfdDevice(6);
  const vm = KvmVm.create();
  const mapper = new BarMapper(device, vm, { hugePfnAlign: false });
  const addresses = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [i, BASE + BigInt(i) * 0x10_0000n]));
  const plan = planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: addresses });
  const n = 200;
  record('map+unmap of a 6-BAR plan', ...compare(n, () => { mapper.map(plan); mapper.unmapAll(); }, () => c(binary, 'map-unmap', n)));
  vm.close();
  device.close();
}

{ // 10 000 slots registered, then 100 000 moves: per-op time at 100 vs 10 000 slots, RSS growth
  const mem = hostMemory(PAGE);
  const perOp = {};
  let rss;
  for (const slots of [100, 10_000]) {
    const vm = KvmVm.create();
    for (let s = 0; s < slots; s++) vm.addSlot({ guestPhysAddr: BASE + BigInt(s) * PAGE, memorySize: PAGE, userspaceAddr: mem.address });
    const last = slots - 1;
    const lastGpa = BASE + BigInt(last) * PAGE;
    const n = slots === 10_000 ? 100_000 : 20_000;
    const rssBefore = rssKiB();
    const lib = time(n, (i) => vm.moveSlot(last, i % 2 === 0 ? MOVED : lastGpa));
    if (slots === 10_000) rss = { beforeKiB: rssBefore, afterKiB: rssKiB() };
    perOp[slots] = { lib, c: c(binary, 'move-under-load', Math.min(n, 20_000), slots) };
    vm.close();
  }
  const growth = perOp[10_000].lib / perOp[100].lib;
  record('move at 10 000 slots', perOp[10_000].lib, perOp[10_000].c, 1.05, { perOpGrowth100to10000: Number(growth.toFixed(3)), growthTarget: 1.2, growthPass: growth <= 1.2, rssGrowthKiB: rss.afterKiB - rss.beforeKiB, rssTargetKiB: 2048, rssPass: rss.afterKiB - rss.beforeKiB < 2048 });
  sys.munmap(mem);
}

{ // import time of the package, cold process each time
  const samples = Array.from({ length: 5 }, () => Number(execFileSync(process.execPath, ['--input-type=module', '-e', `const t=performance.now(); await import(${JSON.stringify(path.join(here, '..', 'dist', 'index.js'))}); console.log(performance.now()-t)`], { encoding: 'utf8' })));
  const baseline = Array.from({ length: 5 }, () => Number(execFileSync(process.execPath, ['--input-type=module', '-e', `const t=performance.now(); await import('node:os'); console.log(performance.now()-t)`], { encoding: 'utf8' })));
  results.push({ name: 'import vfio-bars (cold process)', importMs: Number(median(samples).toFixed(1)), note: `importing node:os alone: ${median(baseline).toFixed(1)} ms` });
}

const table = new Table({ head: ['benchmark', 'vfio-bars ns/op', 'C ns/op', 'ratio', 'target', 'result'], style: { head: [], border: [] } });
for (const r of results) {
  const verdict = r.pass === undefined ? '' : r.pass ? 'PASS' : 'MISS';
  if (r.importMs !== undefined) {
    table.push([r.name, `${r.importMs} ms`, '-', '-', '-', r.note]);
    continue;
  }
  table.push([r.name, r.libNsPerOp, r.cNsPerOp ?? '-', r.ratio ?? '-', r.target === undefined ? '-' : `<= ${r.target}x`, verdict]);
  if (r.perOpGrowth100to10000 !== undefined) {
    table.push(['  per-op growth 100 -> 10 000 slots', '', '', r.perOpGrowth100to10000, `<= ${r.growthTarget}x`, r.growthPass ? 'PASS' : 'MISS']);
    table.push(['  RSS growth over 100 000 moves', `${r.rssGrowthKiB} KiB`, '', '', '< 2048 KiB', r.rssPass ? 'PASS' : 'MISS']);
  }
}
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, page ${PAGE}`;
console.log(`machine: ${machine}`);
console.log(table.toString());
writeFileSync(path.join(here, 'results.json'), `${JSON.stringify({ machine, date: new Date().toISOString(), results }, null, 2)}\n`);
