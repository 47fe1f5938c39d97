/**
 * What every emulated-tier run shares: QEMU run to its end or killed at a deadline, a silent guest
 * reported as "timed out after N s" with its log kept, and logs pruned so they never pile up.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Logs kept per scenario name; older ones are deleted. */
export const LOGS_KEPT = 5;

/** The guest went silent: QEMU was killed at the deadline; the log was kept. */
export class EmuTimeoutError extends Error {
  constructor(readonly seconds: number, readonly logPath: string, tail: string) {
    super(`timed out after ${seconds} s (log kept at ${logPath}):\n${tail}`);
  }
}

/** Writes the run's log under CACHE/logs and deletes all but the newest {@link LOGS_KEPT} of this scenario. */
export function keepLog(cache: string, name: string, text: string): string {
  const dir = path.join(cache, 'logs');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let logPath = path.join(dir, `${name}-${stamp}.log`);
  for (let n = 1; existsSync(logPath); n++) logPath = path.join(dir, `${name}-${stamp}-${n}.log`);
  writeFileSync(logPath, text);
  pruneLogs(dir, `${name}-`, LOGS_KEPT);
  return logPath;
}

/** Deletes the oldest `prefix*.log` files in `dir` beyond the newest `keep`. */
export function pruneLogs(dir: string, prefix: string, keep: number): void {
  const logs = readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.log') && /^\d{4}-/.test(f.slice(prefix.length)))
    .map((f) => ({ f, mtime: statSync(path.join(dir, f)).mtimeMs }))
    .sort((x, y) => y.mtime - x.mtime || y.f.localeCompare(x.f));
  for (const { f } of logs.slice(keep)) rmSync(path.join(dir, f), { force: true });
}

/** Runs QEMU to its end or until `timeoutMs`, when it is killed and `timedOut` says so. */
export function runQemu(args: string[], timeoutMs: number, binary = 'qemu-system-aarch64'): Promise<{ log: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const qemu = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let timedOut = false;
    qemu.stdout.on('data', (c: Buffer) => chunks.push(c));
    qemu.stderr.on('data', (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => {
      timedOut = true;
      qemu.kill('SIGKILL');
      // A child of the killed process may still hold the pipes open: stop reading so 'close' comes.
      qemu.stdout.destroy();
      qemu.stderr.destroy();
    }, timeoutMs);
    qemu.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    qemu.on('close', () => {
      clearTimeout(timer);
      resolve({ log: Buffer.concat(chunks).toString('utf8').replace(/\r/g, ''), timedOut });
    });
  });
}
