/**
 * Host side of the emulated-aarch64 tier: packs the built library into an overlay initramfs, boots QEMU
 * (TCG, virt machine with EL2 so the guest has KVM) and returns the guest's structured result.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runConsole, type ConsoleOutcome } from './console-runner.js';
import { parseGuestResult, type GuestOutcome, type GuestSuccess } from './guest-contract.js';
import { EmuTimeoutError, SILENCE_MS, keepLog, outerHostArgs } from './harness.js';
import { KEEP_OVERLAYS, keepNewest } from './retention.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');

export interface Artefacts {
  KERNEL_4K: string;
  KERNEL_16K: string;
  KERNEL_64K: string;
  BASE_INITRAMFS: string;
  SHIM_ARM64: string;
  KOFFI_ARM64: string;
  CACHE: string;
  /** Linux 6.12 host kernel with iommufd + VFIO cdev (build-kernel-6.12.sh), 64 KiB pages. */
  KERNEL_612_64K?: string;
  /** newc archive with /usr/bin/node-floor: the Node version package.json's engines names as the floor. */
  NODE_FLOOR_CPIO?: string;
}

/** Runs prepare.sh (cached) and parses its KEY=VALUE output. */
export function prepare(): Artefacts {
  const out = execFileSync(
    'bash',
    [path.join(import.meta.dirname, 'prepare.sh')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 },
  );
  const keyValue = (l: string): [string, string] => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)];
  const values = Object.fromEntries(out.split('\n').filter((l) => /^[A-Z0-9_]+=/.test(l)).map(keyValue));
  for (const key of ['KERNEL_4K', 'KERNEL_16K', 'KERNEL_64K', 'BASE_INITRAMFS', 'SHIM_ARM64', 'KOFFI_ARM64', 'CACHE']) {
    if (!values[key] || !existsSync(values[key])) throw new Error(`prepare.sh did not produce ${key}`);
  }
  return values as unknown as Artefacts;
}

/**
 * base initramfs + an appended newc archive holding /test (the kernel unpacks concatenated archives in order).
 * Staged under the cache's overlays/, of which only the newest few are kept.
 */
export function buildInitrd(a: Artefacts): string {
  const overlays = path.join(a.CACHE, 'overlays');
  mkdirSync(overlays, { recursive: true });
  keepNewest(overlays, /^overlay-/, KEEP_OVERLAYS - 1);
  const stage = mkdtempSync(path.join(overlays, 'overlay-'));
  const lib = path.join(stage, 'test', 'lib');
  mkdirSync(path.join(lib, 'build', 'Release'), { recursive: true });
  cpSync(path.join(REPO, 'dist'), path.join(lib, 'dist'), { recursive: true, filter: (f) => !f.endsWith('.map') && !f.endsWith('.d.ts') });
  cpSync(path.join(REPO, 'package.json'), path.join(lib, 'package.json'));
  for (const dir of ['bin', 'profiles']) cpSync(path.join(REPO, dir), path.join(lib, dir), { recursive: true });
  cpSync(a.SHIM_ARM64, path.join(lib, 'build', 'Release', 'vfio_bars.node'));
  for (const dep of runtimeDependencies()) cpSync(
    path.join(REPO, 'node_modules', dep),
    path.join(lib, 'node_modules', dep),
    { recursive: true },
  );
  cpSync(a.KOFFI_ARM64, path.join(lib, 'node_modules', '@koromix', 'koffi-linux-arm64'), { recursive: true });
  for (const file of ['guest-test.mjs', 'cdev-probe.mjs', 'run.sh']) cpSync(
    path.join(import.meta.dirname, 'guest', file),
    path.join(stage, 'test', file),
  );
  const overlay = path.join(stage, 'overlay.cpio');
  execFileSync('sh', ['-c', 'find test | sort | cpio -o -H newc --quiet -R 0:0 > overlay.cpio'], { cwd: stage });
  const initrd = path.join(stage, 'initrd.cpio');
  writeFileSync(initrd, Buffer.concat([readFileSync(a.BASE_INITRAMFS), readFileSync(overlay)]));
  rmSync(path.join(stage, 'test'), { recursive: true });
  return initrd;
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
  /** Host kernel: Debian's 6.1 (default) or 6.12 with iommufd + VFIO cdev (64 KiB pages only). */
  kernel?: '6.1' | '6.12';
  /** The `iommu` option the guest passes to VfioDevice.open (default 'auto'). */
  iommuMode?: 'auto' | 'iommufd' | 'type1' | 'noiommu';
  /** Run the guest test on the engines floor Node (NODE_FLOOR_CPIO) instead of the base initramfs's Node 22. */
  node?: 'floor';
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
  result: GuestOutcome;
  log: string;
  logPath: string;
  seconds: number;
}

/** A guest run that succeeded, as the host↔guest contract (guest-contract.ts) types it. */
export type GuestResult = GuestSuccess;


/** The outer host's kernel Image for a scenario (guest or example VMM): the 6.1 one of its page size, or 6.12 (64K). */
export function kernelFor(a: Artefacts, s: Pick<Scenario, 'name' | 'pages' | 'kernel'>): string {
  if (s.kernel !== '6.12') return { '4K': a.KERNEL_4K, '16K': a.KERNEL_16K, '64K': a.KERNEL_64K }[s.pages];
  if (s.pages !== '64K' || !a.KERNEL_612_64K) throw new Error(`${s.name}: no 6.12 kernel for ${s.pages} pages (prepare.sh builds 64K)`);
  return a.KERNEL_612_64K;
}

/** The scenario's initrd: `initrd`, plus the engines-floor Node archive appended when the scenario asks for it. */
function initrdFor(a: Artefacts, initrd: string, s: Scenario): string {
  if (s.node !== 'floor') return initrd;
  if (!a.NODE_FLOOR_CPIO) throw new Error(`${s.name}: prepare.sh produced no NODE_FLOOR_CPIO`);
  const floor = initrd.replace(/\.cpio$/, '-node-floor.cpio');
  if (!existsSync(floor)) writeFileSync(floor, Buffer.concat([readFileSync(initrd), readFileSync(a.NODE_FLOOR_CPIO)]));
  return floor;
}

function guestCmdlineFlags(s: Scenario): string[] {
  return [...(s.iommuMode ? [`vfiobars.iommu=${s.iommuMode}`] : []), ...(s.node === 'floor' ? ['vfiobars.node=floor'] : [])];
}

export async function bootScenario(a: Artefacts, initrd: string, s: Scenario, timeoutMs = 240_000): Promise<GuestRun> {
  const kernel = kernelFor(a, s);
  initrd = initrdFor(a, initrd, s);
  // One disk per overlay (per test run): QEMU write-locks its image, and runs may overlap on a shared cache.
  const disk = path.join(path.dirname(initrd), 'nvme-disk.img');
  if (!existsSync(disk)) writeFileSync(disk, Buffer.alloc(1 << 20));
  const append = [
    'console=ttyAMA0',
    'panic=-1',
    `vfiobars.scenario=${s.name}`,
    ...(s.iommu === 'noiommu' ? ['vfio.enable_unsafe_noiommu_mode=1'] : []),
    ...guestCmdlineFlags(s)
  ].join(' ');
  const devices = [
    ...(s.defaultNic ? ['-device', 'virtio-net-pci,romfile='] : []),
    '-device', `nvme,serial=deadbeef,drive=d0${s.nvmeOptions ?? ''}`, '-drive', `if=none,id=d0,file=${disk},format=raw`,
    ...(s.e1000e ? ['-device', 'e1000e,romfile='] : []),
  ];
  const args = outerHostArgs({ kernel, initrd, append, smmu: s.iommu === 'smmu', devices });
  const started = Date.now();
  const outcome = await runConsole('qemu-system-aarch64', args, { totalMs: timeoutMs, silenceMs: Math.min(SILENCE_MS, timeoutMs) });
  const seconds = (Date.now() - started) / 1000;
  const { result, logPath } = recordRun(a.CACHE, s.name, `qemu-system-aarch64 ${args.join(' ')}`, outcome);
  return { result, log: outcome.console, logPath, seconds };
}

/**
 * Keeps the run's console with the tier's other logs (harness.ts keepLog), then fails a timed-out run with
 * EmuTimeoutError or parses the result line against the host↔guest contract.
 * @throws EmuTimeoutError, or an Error naming the log when the result line breaks the contract.
 */
export function recordRun(cache: string, name: string, header: string, outcome: ConsoleOutcome): { result: GuestOutcome; logPath: string } {
  const log = outcome.console;
  const logPath = keepLog(cache, name, `${header}\n\n${log}`);
  const tail = log.split('\n').slice(-40).join('\n');
  if (outcome.kind === 'timed-out') throw new EmuTimeoutError(`${name}: guest ${outcome.message}`, logPath, tail);
  try {
    return { result: parseGuestResult(log), logPath };
  } catch (error) {
    throw new Error(
      `${name}: ${(error as Error).message} (log kept at ${logPath}):\n${tail}`,
      { cause: error },
    );
  }
}
