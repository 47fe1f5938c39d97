/**
 * Host side of the emulated-aarch64 tier: packs the built library into an overlay initramfs, boots QEMU
 * (TCG, virt machine with EL2 so the guest has KVM) and returns the guest's structured result.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EmuTimeoutError, keepLog, runQemu } from './harness.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');

export interface Artefacts {
  KERNEL_4K: string;
  KERNEL_16K: string;
  KERNEL_64K: string;
  BASE_INITRAMFS: string;
  SHIM_ARM64: string;
  KOFFI_ARM64: string;
  CACHE: string;
}

/** Runs prepare.sh (cached) and parses its KEY=VALUE output. */
export function prepare(): Artefacts {
  const out = execFileSync('bash', [path.join(import.meta.dirname, 'prepare.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 });
  const values = Object.fromEntries(out.split('\n').filter((l) => /^[A-Z0-9_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  for (const key of ['KERNEL_4K', 'KERNEL_16K', 'KERNEL_64K', 'BASE_INITRAMFS', 'SHIM_ARM64', 'KOFFI_ARM64', 'CACHE']) {
    if (!values[key] || !existsSync(values[key])) throw new Error(`prepare.sh did not produce ${key}`);
  }
  return values as unknown as Artefacts;
}

/** base initramfs + an appended newc archive holding /test (the kernel unpacks concatenated archives in order). */
export function buildInitrd(a: Artefacts): string {
  const stage = mkdtempSync(path.join(tmpdir(), 'vfio-bars-overlay-'));
  const lib = path.join(stage, 'test', 'lib');
  mkdirSync(path.join(lib, 'build', 'Release'), { recursive: true });
  cpSync(path.join(REPO, 'dist'), path.join(lib, 'dist'), { recursive: true, filter: (f) => !f.endsWith('.map') && !f.endsWith('.d.ts') });
  cpSync(path.join(REPO, 'package.json'), path.join(lib, 'package.json'));
  for (const dir of ['bin', 'profiles']) cpSync(path.join(REPO, dir), path.join(lib, dir), { recursive: true });
  cpSync(a.SHIM_ARM64, path.join(lib, 'build', 'Release', 'vfio_bars.node'));
  for (const dep of runtimeDependencies()) cpSync(path.join(REPO, 'node_modules', dep), path.join(lib, 'node_modules', dep), { recursive: true });
  cpSync(a.KOFFI_ARM64, path.join(lib, 'node_modules', '@koromix', 'koffi-linux-arm64'), { recursive: true });
  for (const file of ['guest-test.mjs', 'run.sh']) cpSync(path.join(import.meta.dirname, 'guest', file), path.join(stage, 'test', file));
  const overlay = path.join(stage, 'overlay.cpio');
  execFileSync('sh', ['-c', 'find test | sort | cpio -o -H newc --quiet -R 0:0 > overlay.cpio'], { cwd: stage });
  const initrd = path.join(stage, 'initrd.cpio');
  writeFileSync(initrd, Buffer.concat([readFileSync(a.BASE_INITRAMFS), readFileSync(overlay)]));
  rmSync(path.join(stage, 'test'), { recursive: true });
  return initrd;
}

/** Removes the staging folder of an initramfs made by {@link buildInitrd} (they would pile up in /tmp). */
export function disposeInitrd(initrd: string): void {
  rmSync(path.dirname(initrd), { recursive: true, force: true });
}

/** The production dependency tree (as npm resolved it), minus koffi's x64 binary package. */
function runtimeDependencies(): string[] {
  const out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO, encoding: 'utf8' });
  const prefix = path.join(REPO, 'node_modules') + path.sep;
  return out.split('\n').filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length)).filter((p) => !p.startsWith('@koromix/'));
}

export interface Scenario {
  name: string;
  pages: '4K' | '16K' | '64K';
  iommu: 'smmu' | 'noiommu';
  /**
   * Add a virtio-net NIC (QEMU's default NIC model, without its option ROM, which Debian ships in a
   * separate package): its 16 KiB BAR shifts the NVMe BAR0 off a 64 KiB boundary.
   */
  defaultNic?: boolean;
  nvmeOptions?: string;
  /** Add QEMU's e1000e (MSI-X in its own 16 KiB BAR3) next to the NVMe. */
  e1000e?: boolean;
}

export interface GuestRun {
  result: GuestResult;
  log: string;
  logPath: string;
  seconds: number;
}

export type GuestResult = Record<string, unknown> & {
  ok: boolean;
  pageSize: number;
  iommu: string;
  bar0: { size: string; flags: number; caps: string[] };
  steps: { name: string; error?: { code: string }; isKvmError?: boolean; registered?: string; skipped?: string }[];
  plan: { guestSize: string; mappings: { size: string; gpa: string; reason: string }[]; trapped: { offset: string; size: string; kind: string; fileOffset?: string; cause: string; reason: string }[]; msix?: { table?: string; pba?: string; relocated: boolean }; warnings: { bar: number; code: string; message: string }[] };
  host: { cap: string; vs: string };
  guest: { cap: { value?: string; mmio?: string }; vs: { value?: string; mmio?: string }; msixTable?: { value?: string; mmio?: string } };
  move: { state: string; cap: { value?: string; mmio?: string }; old: { value?: string; mmio?: string } };
  afterUnmap: { slots: number; mappedBars: number; deviceMappings: number; read: { value?: string; mmio?: string } };
  error?: { message: string; stack?: string };
};

export async function bootScenario(a: Artefacts, initrd: string, s: Scenario, timeoutMs = 240_000): Promise<GuestRun> {
  const kernel = { '4K': a.KERNEL_4K, '16K': a.KERNEL_16K, '64K': a.KERNEL_64K }[s.pages];
  const disk = path.join(a.CACHE, 'nvme-disk.img');
  if (!existsSync(disk)) writeFileSync(disk, Buffer.alloc(1 << 20));
  const append = ['console=ttyAMA0', 'panic=-1', `vfiobars.scenario=${s.name}`, ...(s.iommu === 'noiommu' ? ['vfio.enable_unsafe_noiommu_mode=1'] : [])].join(' ');
  const args = [
    '-M', `virt,virtualization=on,gic-version=3${s.iommu === 'smmu' ? ',iommu=smmuv3' : ''}`,
    '-cpu', 'max,pauth-impdef=on', '-accel', 'tcg,thread=multi', '-smp', '2', '-m', '2G',
    '-nographic', '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', append,
    '-nic', 'none', ...(s.defaultNic ? ['-device', 'virtio-net-pci,romfile='] : []),
    '-device', `nvme,serial=deadbeef,drive=d0${s.nvmeOptions ?? ''}`, '-drive', `if=none,id=d0,file=${disk},format=raw`,
    ...(s.e1000e ? ['-device', 'e1000e,romfile='] : []),
  ];
  const started = Date.now();
  const { log, timedOut } = await runQemu(args, timeoutMs);
  const seconds = (Date.now() - started) / 1000;
  const logPath = keepLog(a.CACHE, s.name, `qemu-system-aarch64 ${args.join(' ')}\n\n${log}`);
  const tail = log.split('\n').slice(-40).join('\n');
  if (timedOut) throw new EmuTimeoutError(timeoutMs / 1000, logPath, tail);
  const line = log.split('\n').find((l) => l.startsWith('VFIOBARS-RESULT '));
  if (!line) throw new Error(`guest printed no result (log kept at ${logPath}):\n${tail}`);
  return { result: JSON.parse(line.slice('VFIOBARS-RESULT '.length).trim()) as GuestResult, log, logPath, seconds };
}
