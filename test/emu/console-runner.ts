/**
 * Runs an emulator and collects its console, with two deadlines: total run time, and silence (no console
 * output for a while: a hung guest under TCG otherwise burns the whole test timeout). On either, the
 * process is killed and the run fails with "timed out after N s"; the console so far is returned with the
 * failure so the caller can keep it as the log.
 */
import { spawn } from 'node:child_process';

export interface ConsoleDeadlines {
  /** Kill after this long in total. */
  totalMs: number;
  /** Kill after this long without a byte of output. */
  silenceMs: number;
}

export type ConsoleOutcome =
  | { kind: 'exited'; console: string; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'timed-out'; console: string; message: string };

/** Runs `command args` to its end or a deadline. Rejects only when the command cannot be started. */
export function runConsole(command: string, args: readonly string[], deadlines: ConsoleDeadlines): Promise<ConsoleOutcome> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout kills whatever it started too (their pipes would hold 'close' open).
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const chunks: Buffer[] = [];
    const started = Date.now();
    let timedOut: string | undefined;
    const kill = (why: string): void => {
      if (timedOut !== undefined) return;
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      timedOut = `timed out after ${seconds} s (${why})`;
      killGroup(child.pid);
    };
    const total = setTimeout(() => kill(`total limit ${deadlines.totalMs / 1000} s`), deadlines.totalMs);
    let silence = setTimeout(() => kill(`no console output for ${deadlines.silenceMs / 1000} s`), deadlines.silenceMs);
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      clearTimeout(silence);
      silence = setTimeout(() => kill(`no console output for ${deadlines.silenceMs / 1000} s`), deadlines.silenceMs);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    // Detached children outlive an aborted test run unless told otherwise.
    const onExit = (): void => killGroup(child.pid);
    process.once('exit', onExit);
    const stop = (): void => { clearTimeout(total); clearTimeout(silence); process.off('exit', onExit); };
    child.on('error', (error) => { stop(); reject(error); });
    child.on('close', (code, signal) => {
      stop();
      const console = Buffer.concat(chunks).toString('utf8').replace(/\r/g, '');
      resolve(timedOut !== undefined ? { kind: 'timed-out', console, message: timedOut } : { kind: 'exited', console, code, signal });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone: nothing to stop.
  }
}
