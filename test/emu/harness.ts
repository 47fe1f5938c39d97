/**
 * What every emulated-tier run shares (guest scenarios, the example VMM, the emulated benchmarks): QEMU run
 * to its end or killed at a deadline (total, or silence: see console-runner.ts), a timed-out run reported as
 * "timed out after N s" with its log kept, and logs pruned so they never pile up (retention.ts).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runConsole } from './console-runner.js';
import { KEEP_LOGS, keepNewest } from './retention.js';

/** Logs kept per scenario name; older ones are deleted (and never more than KEEP_LOGS in all). */
export const LOGS_KEPT = 5;

/** Silence longer than this fails a run: a boot prints within seconds, and the guests log each step. */
export const SILENCE_MS = 120_000;

/** The guest went silent or ran too long: QEMU was killed at the deadline; the log was kept. */
export class EmuTimeoutError extends Error {
  /**
   * @param what the deadline that struck, e.g. `timed out after 240 s (total limit 240 s)`, or its seconds
   * @param logPath where the run's console was kept
   * @param tail the console's last lines, for the failure message
   */
  constructor(what: string | number, readonly logPath: string, tail: string) {
    super(`${typeof what === 'number' ? `timed out after ${what} s` : what} (log kept at ${logPath}):\n${tail}`);
    this.name = 'EmuTimeoutError';
  }
}

/**
 * Writes the run's log as `CACHE/logs/<name>-<time>.log`, keeps the newest {@link LOGS_KEPT} of this scenario
 * and the newest KEEP_LOGS logs in all, and returns its path.
 */
export function keepLog(cache: string, name: string, text: string): string {
  const dir = path.join(cache, 'logs');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let logPath = path.join(dir, `${name}-${stamp}.log`);
  for (let n = 1; existsSync(logPath); n++) logPath = path.join(dir, `${name}-${stamp}-${n}.log`);
  writeFileSync(logPath, text);
  pruneLogs(dir, `${name}-`, LOGS_KEPT);
  keepNewest(dir, /\.log$/, KEEP_LOGS);
  return logPath;
}

/** Deletes the oldest `prefix<ISO time>*.log` files in `dir` beyond the newest `keep` (other scenarios' stay). */
export function pruneLogs(dir: string, prefix: string, keep: number): void {
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  keepNewest(dir, new RegExp(`^${escaped}\\d{4}-.*\\.log$`), keep);
}

/**
 * Runs QEMU (or `binary`) to its end, or kills it after `timeoutMs` in all or {@link SILENCE_MS} of silence;
 * `timedOut` and `message` say which.
 */
export async function runQemu(
  args: string[],
  timeoutMs: number,
  binary = 'qemu-system-aarch64',
): Promise<{ log: string; timedOut: boolean; message?: string }> {
  const outcome = await runConsole(binary, args, { totalMs: timeoutMs, silenceMs: Math.min(SILENCE_MS, timeoutMs) });
  if (outcome.kind === 'timed-out') return { log: outcome.console, timedOut: true, message: outcome.message };
  return { log: outcome.console, timedOut: false };
}

/** What differs between boots of the emulated host; the rest of the QEMU command line is {@link outerHostArgs}'s. */
export interface OuterHost {
  kernel: string;
  initrd: string;
  append: string;
  /** Give the host an SMMUv3 (its devices then sit behind an IOMMU). */
  smmu: boolean;
  /** Guest RAM of the host. Default 2G. */
  memory?: string;
  /** QEMU arguments for the host's devices, in PCI slot order. */
  devices: string[];
}

/** The emulated aarch64 host every run boots: QEMU virt with EL2 (for nested KVM), GICv3, TCG on two vCPUs. */
export function outerHostArgs(host: OuterHost): string[] {
  return [
    '-M', `virt,virtualization=on,gic-version=3${host.smmu ? ',iommu=smmuv3' : ''}`,
    '-cpu', 'max,pauth-impdef=on', '-accel', 'tcg,thread=multi', '-smp', '2', '-m', host.memory ?? '2G',
    '-nographic', '-no-reboot', '-kernel', host.kernel, '-initrd', host.initrd, '-append', host.append,
    '-nic', 'none', ...host.devices,
  ];
}

/**
 * Boots the emulated host with `args` (see {@link outerHostArgs}), keeps the log as `name`, and returns the
 * console and the outer run's seconds.
 * @throws EmuTimeoutError naming the kept log when the run went silent or ran past `timeoutS`.
 */
export async function bootOuterHost(
  cache: string,
  name: string,
  args: string[],
  timeoutS: number,
): Promise<{ log: string; logPath: string; seconds: number }> {
  const started = Date.now();
  const { log, timedOut, message } = await runQemu(args, timeoutS * 1000);
  const seconds = (Date.now() - started) / 1000;
  const logPath = keepLog(cache, name, `qemu-system-aarch64 ${args.join(' ')}\n\n${log}`);
  if (timedOut) {
    const tail = log.split('\n').slice(-40).join('\n');
    throw new EmuTimeoutError(`${name}: ${message ?? `timed out after ${timeoutS} s`}`, logPath, tail);
  }
  return { log, logPath, seconds };
}
