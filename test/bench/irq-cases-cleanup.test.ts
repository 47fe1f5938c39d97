/**
 * The interrupt benchmark's sides leak nothing when their set-up fails (fds, eventfds, irqfds, routes, mappings,
 * the kicker's FIFO): every system call of each side's setup is failed in turn, on the real /dev/kvm, and the
 * process's open fds are counted before and after. A setup that succeeds runs one round and tears down; then
 * no kicker process may be left.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { beforeAll, expect, it } from 'vitest';
import { SystemError, realSyscalls, type Syscalls } from 'vfio-bars';
import type { Side } from '../../bench/cases.js';
import { msiRelaySide, msiRelayThreadSide, msiSide } from '../../bench/irq-cases.js';
import { describeKvm } from '../helpers/kvm-required.js';

const EIO = 5;

/** Real system calls, except that call number `failAt` (counting from 0) throws EIO once. */
function failingAt(failAt: number): { syscalls: Syscalls; calls: () => number; disarm: () => void } {
  const real = realSyscalls();
  let count = 0;
  let armed = true;
  const syscalls = new Proxy(real, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || property === 'pageSize') return value;
      return (...args: unknown[]): unknown => {
        const call = (): unknown => (value as (...a: unknown[]) => unknown).apply(target, args);
        if (count++ !== failAt || !armed) return call();
        // close(2) releases the fd even when it reports an error (Linux): so does the injected failure.
        if (property === 'close') call();
        throw new SystemError({ errno: EIO, syscall: String(property) });
      };
    },
  });
  return { syscalls, calls: () => count, disarm: () => { armed = false; } };
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Kicker processes this process started that are still alive (SIGTERM is asynchronous: waits up to 2 s). */
async function liveKickers(): Promise<number> {
  const count = (): number => {
    try {
      return execFileSync('pgrep', ['-P', String(process.pid), '-f', 'kvm-bench --kicker'], { encoding: 'utf8' }).trim().split('\n').length;
    } catch {
      return 0; // pgrep exits 1 when nothing matches
    }
  };
  for (let i = 0; i < 40 && count() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return count();
}

let cBinary: string;

beforeAll(() => {
  cBinary = path.join(mkdtempSync(path.join(tmpdir(), 'irq-cleanup-')), 'kvm-bench');
  const source = path.resolve(import.meta.dirname, '..', '..', 'bench', 'c', 'kvm-bench.c');
  execFileSync('cc', ['-O2', '-Wall', '-Werror', '-pthread', '-o', cBinary, source]);
});

const sides: [string, (sys: Syscalls, cBinary: string) => Side][] = [
  ['direct irqfd', msiSide],
  ['relay on the event loop', msiRelaySide],
  ['relay on a thread', msiRelayThreadSide],
];

describeKvm('interrupt benchmark sides: no leak when setup fails (real /dev/kvm)', () => {
  for (const [name, make] of sides) {
    it(`${name}: each setup system call failing in turn leaves no fd open`, async () => {
      for (let failAt = 0; ; failAt++) {
        const before = openFds();
        const { syscalls, calls, disarm } = failingAt(failAt);
        const side = make(syscalls, cBinary);
        let failed = false;
        try {
          await side.setup();
        } catch (error) {
          failed = true;
          expect(error, `call ${failAt}`).toBeDefined();
        }
        disarm(); // only setup's calls fail
        if (!failed) {
          expect(await side.round(2), name).toBeGreaterThan(0);
          await side.teardown();
        }
        expect(openFds(), `${name}: fds after failing call ${failAt} of ${calls()}`).toBe(before);
        if (!failed) {
          expect(failAt, 'setup made system calls').toBeGreaterThan(10);
          expect(await liveKickers(), 'kicker processes left').toBe(0);
          return;
        }
      }
    });
  }
});
