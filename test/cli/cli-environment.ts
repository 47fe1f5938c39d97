/**
 * Stand-ins for the CLI's environment: a fake sysfs tree (which driver holds which device), a pretend
 * terminal that records progress, and a memfd "device" with an MSI-X table inside a directly mapped BAR,
 * whose pread answers all-ones over the table exactly as vfio-pci does.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CliDevice, CliEnvironment } from '../../src/cli/environment.js';
import { Progress } from '../../src/cli/progress.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import type { Syscalls } from '../../src/sys/syscalls.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { driverOf } from '../../src/vfio/sysfs.js';

/** A stream that says it is (or is not) a terminal and keeps what was written. */
export class RecordingStream {
  readonly written: string[] = [];
  constructor(readonly isTTY: boolean) {}
  write(text: string): boolean {
    this.written.push(text);
    return true;
  }
}

/** A sysfs root under a temporary folder; `bind(bdf, driver)` creates the device and its driver link. */
export class FakeSysfs implements Disposable {
  readonly root = mkdtempSync(path.join(tmpdir(), 'vfio-bars-sysfs-'));

  bind(bdf: string, driver: string | undefined): void {
    const dir = path.join(this.root, 'bus', 'pci', 'devices', bdf);
    mkdirSync(dir, { recursive: true });
    if (driver === undefined) return;
    const driverDir = path.join(this.root, 'bus', 'pci', 'drivers', driver);
    mkdirSync(driverDir, { recursive: true });
    symlinkSync(path.relative(dir, driverDir), path.join(dir, 'driver'));
  }

  [Symbol.dispose](): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

export const MSIX_TABLE = { offset: 0x0n, size: 0x100n } as const;
export const MSIX_PBA = { offset: 0x3800n, size: 0x8n } as const;
const BAR_SIZE = 0x4000n;

/**
 * BAR0 of 16 KiB over a memfd, MSIX_MAPPABLE, MSI-X table at 0: its page would cut the direct mapping, so the
 * planner relocates it and maps the whole BAR directly, table bytes included. Every word holds a pattern; `preadLie` makes pread return a
 * wrong value at one offset, to see a real mismatch reported.
 */
export class MsixMemfdDevice implements CliDevice {
  readonly bdf: string;
  readonly fd: number;
  readonly syscalls: Syscalls;
  readonly dma = undefined;
  readonly iommuMode = 'noiommu' as const;
  readonly iommuReason = 'noiommu (memfd stand-in)';
  #closed = false;

  constructor(bdf: string, preadLie?: bigint) {
    this.bdf = bdf;
    const real = realSyscalls();
    this.fd = real.memfdCreate('vfio-bars-cli-bar0', 0);
    real.ftruncate(this.fd, BAR_SIZE);
    const pattern = Buffer.alloc(Number(BAR_SIZE));
    for (let i = 0; i < pattern.length; i += 4) pattern.writeUInt32LE((0x5a000000 + i) >>> 0, i);
    real.pwrite(this.fd, pattern, 0n);
    const pread = (fd: number, buffer: Buffer, offset: bigint): number => vfioPread(real, fd, buffer, offset, preadLie);
    // A proxy, not Object.create: the real syscalls keep private fields that only the instance itself can reach.
    this.syscalls = new Proxy(real, {
      get: (target, key): unknown => {
        if (key === 'pread') return pread;
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  describe(): DeviceDescription {
    return {
      bdf: this.bdf, flags: 3, numRegions: 9, numIrqs: 5,
      regions: [{ index: 0, flags: 0xf, size: BAR_SIZE, offset: 0n, capabilities: [{ kind: 'msix-mappable', id: 3, version: 1 }] }],
      irqs: [{ index: 2, flags: 0x9, count: 16 }],
      bars: [{ index: 0, kind: 'memory', is64Bit: false, prefetchable: false, address: 0xfe00_0000n }],
      msix: { capOffset: 0x40, vectors: 16, table: { bir: 0, ...MSIX_TABLE }, pba: { bir: 0, ...MSIX_PBA } },
    };
  }

  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    realSyscalls().close(this.fd);
  }
}

/** vfio-pci's pread of the MSI-X BAR: all-ones over the table (its emulation owns it), the device elsewhere. */
function vfioPread(real: Syscalls, fd: number, buffer: Buffer, offset: bigint, lie: bigint | undefined): number {
  const n = real.pread(fd, buffer, offset);
  for (let i = 0; i < n; i++) {
    const at = offset + BigInt(i);
    if (at >= MSIX_TABLE.offset && at < MSIX_TABLE.offset + MSIX_TABLE.size) buffer[i] = 0xff;
  }
  if (lie !== undefined && offset === lie) buffer.writeUInt32LE(0xdeadbeef, 0);
  return n;
}

export interface TestEnvironment extends CliEnvironment {
  readonly stderr: RecordingStream;
  /** Every BDF opened, in order. */
  readonly opened: string[];
  /** The --iommu choice of each open, in order. */
  readonly iommus: string[];
}

/** An environment over a fake sysfs whose devices open as MsixMemfdDevice. */
export function testEnvironment(sysfs: FakeSysfs, options: { tty?: boolean; preadLie?: bigint; pageSize?: bigint } = {}): TestEnvironment {
  const stderr = new RecordingStream(options.tty ?? false);
  const opened: string[] = [];
  const iommus: string[] = [];
  return {
    stderr,
    opened,
    iommus,
    openDevice: (bdf, iommu) => {
      opened.push(bdf);
      iommus.push(iommu);
      return new MsixMemfdDevice(bdf, options.preadLie);
    },
    driverOf: (bdf) => driverOf(bdf, { sysfsRoot: sysfs.root }),
    hostPageSize: () => options.pageSize ?? BigInt(realSyscalls().pageSize()),
    progress: new Progress(stderr),
  };
}
