/**
 * What the no-op KVM_SET_USER_MEMORY_REGION costs, layer by layer, in one process (interleaved rounds,
 * medians of ns per call): an empty N-API call, the shim's six-argument conversions without the ioctl,
 * the shim's real call, the same ioctl through koffi with a pre-encoded struct, realSyscalls(), and
 * KvmVm.moveSlot (the bench's library side). Needs cc and the system's node_api.h.
 *
 *   npm run build && npx tsc -p tsconfig.bench.json && node bench/.out/profile/napi-floor.js [rounds]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { KvmVm, PROT, realSyscalls, type Syscalls } from 'vfio-bars';
import { spread } from '../runner.js';

type SetRegion = (vmFd: number, slot: number, flags: number, gpa: bigint, size: bigint, hva: bigint) => void;

interface Floor {
  empty(): void;
  args6: SetRegion;
  struct2(vmFd: number, region: BigUint64Array): void;
}

const U64_WORDS = new BigUint64Array(4);
const U32_WORDS = new Uint32Array(U64_WORDS.buffer);

/** Range-checks and encodes a kvm_userspace_memory_region into one reused typed array (what a struct shim would take). */
function encodeRegion(slot: number, flags: number, gpa: bigint, size: bigint, hva: bigint): BigUint64Array {
  const u64 = (v: bigint): bigint => {
    if (BigInt.asUintN(64, v) !== v) throw new RangeError('not a u64');
    return v;
  };
  if (slot >>> 0 !== slot || flags >>> 0 !== flags) throw new RangeError('not a u32');
  U32_WORDS[0] = slot;
  U32_WORDS[1] = flags;
  U64_WORDS[1] = u64(gpa);
  U64_WORDS[2] = u64(size);
  U64_WORDS[3] = u64(hva);
  return U64_WORDS;
}

// bench/.out/profile → the repository root is three levels up.
const root = path.resolve(import.meta.dirname, '..', '..', '..');
const require = createRequire(import.meta.url);

function buildFloor(): Floor {
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'napi-floor-')), 'napi-floor.node');
  const source = path.join(root, 'bench', 'profile', 'napi-floor.c');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-I/usr/include/node', source, '-o', out]);
  return require(out) as Floor;
}

function slotMemory(sys: Syscalls): { address: bigint } {
  const fd = sys.memfdCreate('napi-floor', 0);
  sys.ftruncate(fd, 4096n);
  const mapping = sys.mmap(fd, 0n, 4096n, PROT.READ | PROT.WRITE);
  sys.close(fd);
  return mapping;
}

const rounds = Number(process.argv[2] ?? '15');
const iterations = 200_000;
const BASE = 0x1_0000_0000n;
const sys = realSyscalls();
const floor = buildFloor();
const shim = require(path.join(root, 'build', 'Release', 'vfio_bars.node')) as { setUserMemoryRegion: SetRegion };
const memory = slotMemory(sys);
const vm = KvmVm.create();
const slot = vm.addSlot({ guestPhysAddr: BASE, memorySize: 4096n, userspaceAddr: memory.address });
const struct = Buffer.alloc(32);
struct.writeUInt32LE(slot, 0);
struct.writeBigUInt64LE(BASE, 8);
struct.writeBigUInt64LE(4096n, 16);
struct.writeBigUInt64LE(memory.address, 24);
const region = { slot, flags: 0, guestPhysAddr: BASE, memorySize: 4096n, userspaceAddr: memory.address };

const variants: Record<string, () => void> = {
  'N-API empty call': () => floor.empty(),
  'N-API six arguments, no ioctl': () => floor.args6(vm.fd, slot, 0, BASE, 4096n, memory.address),
  'N-API encoded struct, no ioctl': () => floor.struct2(vm.fd, encodeRegion(slot, 0, BASE, 4096n, memory.address)),
  'shim setUserMemoryRegion (ioctl)': () => shim.setUserMemoryRegion(vm.fd, slot, 0, BASE, 4096n, memory.address),
  'koffi ioctl, pre-encoded struct': () => sys.ioctl(vm.fd, 'KVM_SET_USER_MEMORY_REGION', struct),
  'realSyscalls().setUserMemoryRegion': () => sys.setUserMemoryRegion(vm.fd, region),
  'KvmVm.moveSlot (bench library side)': () => vm.moveSlot(slot, BASE),
};

const samples = new Map<string, number[]>(Object.keys(variants).map((name) => [name, []]));
for (let r = 0; r < rounds + 1; r++) {
  const names = Object.keys(variants);
  if (r % 2 === 1) names.reverse();
  for (const name of names) {
    const fn = variants[name]!;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    const ns = Number(process.hrtime.bigint() - t0) / iterations;
    if (r > 0) samples.get(name)!.push(ns);
  }
}
vm.close();
const load = loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`ns per call, median (±half IQR) of ${rounds} interleaved rounds of ${iterations}; load ${load}`);
for (const [name, ns] of samples) {
  const s = spread(ns);
  console.log(`${name.padEnd(40)} ${s.median.toFixed(0).padStart(6)} ns ±${((s.relIqr / 2) * 100).toFixed(0)}%`);
}
