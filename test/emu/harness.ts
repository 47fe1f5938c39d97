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
