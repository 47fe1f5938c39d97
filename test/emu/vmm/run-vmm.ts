/**
 * Host side of the example-VMM scenarios: compiles the example, packs it with the nested guest's kernel
 * and initramfs into a third initramfs archive (after the tier's base and library overlay), boots the
 * emulated aarch64 host, and returns what the VMM and the nested guest printed.
 * The harness rules (timeouts, kept and pruned logs) are in ../harness.ts; the staging folder is
 * removed by `dispose`.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bootOuterHost, outerHostArgs } from '../harness.js';
import { buildInitrd, kernelFor, prepare, type Artefacts } from '../run-guest.js';

const REPO = path.resolve(import.meta.dirname, '..', '..', '..');
const EXAMPLE = path.join(REPO, 'examples', 'arm64-vmm');
export type VmmArtefacts = Artefacts & { GUEST_KERNEL: string; GUEST_INITRAMFS: string };

export function prepareVmm(): VmmArtefacts {
  const a = prepare() as VmmArtefacts;
  for (const key of ['GUEST_KERNEL', 'GUEST_INITRAMFS'] as const) {
    if (!a[key] || !existsSync(a[key])) throw new Error(`prepare.sh did not produce ${key}`);
  }
  return a;
}

export interface VmmScenario {
  name: string;
  /** Outer host page size (the tier's kernels). */
  pages: '4K' | '16K' | '64K';
  /**
   * The outer host's IOMMU. `noiommu`: no SMMU, vfio-pci's unsafe no-IOMMU mode and one 512 MiB huge page
   * reserved, which the VMM's guest RAM uses at guest physical = host physical (`--ram-at-physical`).
   */
  iommu: 'smmu' | 'noiommu';
  /** Outer host kernel: the tier's 6.1 (default) or the 6.12 one with iommufd and the VFIO cdev (64K only). */
  kernel?: '6.1' | '6.12';
  /** The VMM's `--iommu` request. Default `'auto'` (`'noiommu'` with `iommu: 'noiommu'`). */
  vmmIommu?: 'auto' | 'type1' | 'iommufd';
  /** Nested guest command line. Default: quiet console. */
  append?: string;
  memMiB?: number;
  /** Seconds the VMM may run inside the outer host. */
  vmmTimeoutS?: number;
  /** Seconds for the whole outer boot. */
  timeoutS?: number;
  /** Give the nested guest the ECAM host bridge. */
  pci?: boolean;
  /** Pass QEMU's NVMe through to the nested guest (the VMM's --vfio), with this disk image behind it. */
  nvmeDisk?: string;
  /** Pass QEMU's e1000e through instead (added to the outer host for this). */
  e1000e?: boolean;
}

/** vendor:device of what the outer host binds to vfio-pci for the VMM, and the guest's marker for it. */
function passthroughOf(s: VmmScenario): { id: string; marker: string } | undefined {
  if (s.e1000e) return { id: '0x8086:0x10d3', marker: 'vmm.e1000e' };
  if (s.nvmeDisk) return { id: '0x1b36:0x0010', marker: 'vmm.nvme' };
  return undefined;
}

/** The example VMM's flags for a scenario. */
function vmmFlags(s: VmmScenario): string {
  const flags = s.pci ? ['--pci'] : [];
  if (s.iommu === 'noiommu') flags.push('--iommu', 'noiommu', '--ram-at-physical');
  else flags.push('--iommu', s.vmmIommu ?? 'auto');
  return flags.join(' ');
}

/** Base + library overlay (buildInitrd) + this archive: /test/run.sh, the example, the nested guest. */
export function buildVmmInitrd(a: VmmArtefacts, s: VmmScenario): { initrd: string; dispose: () => void } {
  execFileSync('npx', ['tsc', '-p', path.join(EXAMPLE, 'tsconfig.json')], { cwd: REPO, stdio: 'inherit' });
  const base = buildInitrd(a);
  const stage = path.dirname(base);
  const root = path.join(stage, 'vmm-root');
  const example = path.join(root, 'test', 'lib', 'examples', 'arm64-vmm');
  mkdirSync(example, { recursive: true });
  mkdirSync(path.join(root, 'test', 'guest'), { recursive: true });
  cpSync(path.join(EXAMPLE, 'build'), example, { recursive: true });
  cpSync(path.join(import.meta.dirname, 'host-run.sh'), path.join(root, 'test', 'run.sh'));
  cpSync(a.GUEST_KERNEL, path.join(root, 'test', 'guest', 'Image'));
  cpSync(a.GUEST_INITRAMFS, path.join(root, 'test', 'guest', 'initrd.cpio'));
  const env = {
    VMM_TIMEOUT: String(s.vmmTimeoutS ?? 120),
    VMM_MEM: String(s.memMiB ?? 256),
    VMM_APPEND: `${s.append ?? 'console=ttyAMA0 quiet panic=-1'}${passthroughOf(s) ? ` ${passthroughOf(s)!.marker}` : ''}`,
    VMM_FLAGS: vmmFlags(s),
    VMM_VFIO: passthroughOf(s)?.id ?? '',
  };
  writeFileSync(path.join(root, 'test', 'vmm.env'), Object.entries(env).map(([k, v]) => `${k}='${v}'\n`).join(''));
  execFileSync('sh', ['-c', 'find test | sort | cpio -o -H newc --quiet -R 0:0 > ../vmm.cpio'], { cwd: root });
  const initrd = path.join(stage, 'initrd-vmm.cpio');
  writeFileSync(initrd, Buffer.concat([readFileSync(base), readFileSync(path.join(stage, 'vmm.cpio'))]));
  rmSync(root, { recursive: true });
  return { initrd, dispose: () => rmSync(stage, { recursive: true, force: true }) };
}

export interface VmmRun {
  log: string;
  logPath: string;
  seconds: number;
  /** The VMM's `VMM-REPORT` JSON. */
  report: Record<string, unknown> & {
    event: string;
    exits: Record<string, number>;
    mmio: Record<string, number>;
    consoleBytes: number;
    seconds: number;
  };
  /** Nested guest lines by marker (`VMM-GUEST-UP` → the rest of its line). */
  guest: Map<string, string[]>;
}


export async function bootVmm(a: VmmArtefacts, initrd: string, s: VmmScenario): Promise<VmmRun> {
  const kernel = kernelFor(a, s);
  const disk = s.nvmeDisk ?? path.join(a.CACHE, 'nvme-disk.img');
  if (!existsSync(disk)) writeFileSync(disk, Buffer.alloc(1 << 20));
  const noiommu = ['vfio.enable_unsafe_noiommu_mode=1', 'hugepages=1'];
  const append = ['console=ttyAMA0', 'panic=-1', ...(s.iommu === 'noiommu' ? noiommu : [])].join(' ');
  const devices = [
    '-device', 'nvme,serial=deadbeef,drive=d0', '-drive', `if=none,id=d0,file=${disk},format=raw`,
    ...(s.e1000e ? ['-device', 'e1000e,romfile='] : []),
  ];
  const args = outerHostArgs({ kernel, initrd, append, smmu: s.iommu === 'smmu', devices });
  const { log, logPath, seconds } = await bootOuterHost(a.CACHE, s.name, args, s.timeoutS ?? 300);
  const tail = log.split('\n').slice(-40).join('\n');
  const reportLine = log.split('\n').find((l) => l.startsWith('VMM-REPORT '));
  if (!reportLine) throw new Error(`the VMM printed no report (log kept at ${logPath}):\n${tail}`);
  const guest = new Map<string, string[]>();
  for (const line of log.split('\n')) {
    const m = /^(VMM-GUEST-[A-Z0-9]+)\s?(.*)$/.exec(line);
    if (m) guest.set(m[1]!, [...(guest.get(m[1]!) ?? []), m[2]!]);
  }
  return { log, logPath, seconds, report: JSON.parse(reportLine.slice('VMM-REPORT '.length)) as VmmRun['report'], guest };
}

