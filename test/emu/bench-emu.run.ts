/**
 * `npm run bench:emu` (a benchmark, not a CI test): in ONE boot of the emulated 64 KiB aarch64 host (TCG,
 * SMMUv3, QEMU's NVMe with its 16 KiB BAR0 and MSI-X table at +0x2000), the same nested guest (the example
 * VMM's 4 KiB guest kernel, the bench's busybox init, the same two `dd` reads) runs under Debian's arm64
 * qemu-system-aarch64 7.2 (default, then `x-msix-relocation=bar0`) and under the example VMM. Prints the
 * side-by-side table, merges its figures into bench/emu-results.json (bench-emu-results.ts: the huge-PFN part's stay)
 * and regenerates the README's marked section from the merged file. The huge-PFN part is bench-emu-huge-pfn.run.ts.
 * Preparation: test/emu/prepare.sh (kernels, base initramfs, guest) and bench/emu/prepare-qemu-arm64.sh.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { saveBenchEmuResults } from './bench-emu-results.js';
import { benchTable, parseBenchLog, wholeRunTable, type BenchRun } from './bench-emu-table.js';
import { bootOuterHost, outerHostArgs } from './harness.js';
import { buildInitrd } from './run-guest.js';
import { prepareVmm, type VmmArtefacts } from './vmm/run-vmm.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const BENCH = path.join(REPO, 'bench', 'emu');
const CONFIGS = process.env.BENCH_EMU_CONFIGS ?? 'qemu-default,qemu-relo-bar0,example-vmm';
const NESTED_TIMEOUT_S = 300;
const OUTER_TIMEOUT_S = 1500;

function prepareQemu(): { overlay: string; version: string } {
  const out = execFileSync('bash', [path.join(BENCH, 'prepare-qemu-arm64.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const value = (key: string): string => out.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1) ?? '';
  return { overlay: value('QEMU_OVERLAY'), version: value('QEMU_VERSION') };
}

/** The bench guest's initramfs: busybox from the tier's base initramfs plus bench/emu/guest-init. */
function guestInitrd(a: VmmArtefacts, stage: string): string {
  const root = path.join(stage, 'bench-guest');
  mkdirSync(root, { recursive: true });
  execFileSync('sh', ['-c', `cpio -i --quiet --make-directories bin/busybox < '${a.BASE_INITRAMFS}'`], { cwd: root });
  for (const dir of ['dev', 'proc', 'sys', 'tmp']) mkdirSync(path.join(root, dir));
  cpSync(path.join(BENCH, 'guest-init'), path.join(root, 'init'));
  execFileSync('sh', ['-c', 'chmod 755 init && find . | sort | cpio -o -H newc --quiet -R 0:0 > ../bench-guest.cpio'], { cwd: root });
  rmSync(root, { recursive: true });
  return path.join(stage, 'bench-guest.cpio');
}

/** base + library overlay + Debian's QEMU + this archive (/test/run.sh, the example VMM, the bench scripts, the guest). */
function benchInitrd(a: VmmArtefacts, qemuOverlay: string): { initrd: string; stage: string } {
  execFileSync('npx', ['tsc', '-p', path.join(REPO, 'examples', 'arm64-vmm', 'tsconfig.json')], { cwd: REPO, stdio: 'inherit' });
  const base = buildInitrd(a);
  const stage = path.dirname(base);
  const root = path.join(stage, 'bench-root');
  const lib = path.join(root, 'test', 'lib');
  cpSync(path.join(REPO, 'examples', 'arm64-vmm', 'build'), path.join(lib, 'examples', 'arm64-vmm'), { recursive: true });
  for (const file of ['vmm-bench.js', 'count-trace.js']) cpSync(path.join(BENCH, file), path.join(lib, 'bench', 'emu', file));
  cpSync(path.join(BENCH, 'l1-run.sh'), path.join(root, 'test', 'run.sh'));
  mkdirSync(path.join(root, 'test', 'guest'), { recursive: true });
  cpSync(a.GUEST_KERNEL, path.join(root, 'test', 'guest', 'Image'));
  cpSync(guestInitrd(a, stage), path.join(root, 'test', 'guest', 'initrd.cpio'));
  writeFileSync(path.join(root, 'test', 'bench.env'), `BENCH_CONFIGS='${CONFIGS}'\nBENCH_TIMEOUT='${NESTED_TIMEOUT_S}'\n`);
  execFileSync('sh', ['-c', 'find test | sort | cpio -o -H newc --quiet -R 0:0 > ../bench.cpio'], { cwd: root });
  rmSync(root, { recursive: true });
  const initrd = path.join(stage, 'initrd-bench.cpio');
  writeFileSync(initrd, Buffer.concat([readFileSync(base), readFileSync(qemuOverlay), readFileSync(path.join(stage, 'bench.cpio'))]));
  return { initrd, stage };
}

/** A 64 MiB disk with a known pattern: the guest reads its first 16 MiB twice. */
function benchDisk(a: VmmArtefacts): string {
  const disk = path.join(a.CACHE, 'bench-emu-disk.img');
  const data = Buffer.alloc(64 << 20);
  for (let i = 0; i < data.length / 4; i++) data.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i * 4);
  writeFileSync(disk, data);
  return disk;
}

it('bench:emu: QEMU 7.2 (default, x-msix-relocation=bar0) and the example VMM, one outer boot', async () => {
  const a = prepareVmm();
  const qemu = prepareQemu();
  const { initrd, stage } = benchInitrd(a, qemu.overlay);
  try {
    const devices = ['-device', 'nvme,serial=deadbeef,drive=d0', '-drive', `if=none,id=d0,file=${benchDisk(a)},format=raw`];
    const args = outerHostArgs({
      kernel: a.KERNEL_64K, initrd, append: 'console=ttyAMA0 panic=-1', smmu: true, memory: '3G', devices,
    });
    const { log, logPath, seconds: outerSeconds } = await bootOuterHost(a.CACHE, 'bench-emu', args, OUTER_TIMEOUT_S);
    console.log(`outer boot ${outerSeconds.toFixed(1)} s, log ${logPath}`);
    const runs = parseBenchLog(log);
    report(runs, qemu.version, log, outerSeconds);
    expect(runs.map((r) => r.name).join(','), `runs that reported (log ${logPath})`).toBe(CONFIGS);
    for (const r of runs) expect(r.windowSeen, `${r.name}: the guest's markers were seen`).toBe(true);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
});

function report(runs: BenchRun[], qemuVersion: string, log: string, outerSeconds: number): void {
  const host = /BENCH-HOST (QEMU emulator version [^\n]+)/.exec(log)?.[1]?.trim() ?? `qemu ${qemuVersion}`;
  console.log(`\n${benchTable(runs)}\n\nWhole nested runs:\n${wholeRunTable(runs)}\n`);
  saveBenchEmuResults(REPO, { date: new Date().toISOString(), nestedQemu: host, outerSeconds, runs });
}
