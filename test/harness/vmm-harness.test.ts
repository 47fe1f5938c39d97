/**
 * The emulated tier's harness rules, checked on the host without QEMU: a guest that goes silent is killed
 * at the deadline and reported as a timeout with its log kept; logs are pruned per scenario.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EmuTimeoutError, LOGS_KEPT, keepLog, pruneLogs, runQemu } from '../emu/harness.js';

const dirs: string[] = [];
const scratch = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vfio-bars-harness-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('emulated-tier harness', () => {
  it('kills a silent run at the deadline and says it timed out; a finished run is not a timeout', async () => {
    const started = Date.now();
    const silent = await runQemu(['-c', 'echo booting; sleep 30'], 500, 'sh');
    expect(silent.timedOut).toBe(true);
    expect(silent.log).toBe('booting\n');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await runQemu(['-c', 'echo done'], 5_000, 'sh')).toEqual({ log: 'done\n', timedOut: false });
    const error = new EmuTimeoutError(240, '/cache/logs/x.log', 'booting');
    expect(error.message).toMatch(/^timed out after 240 s \(log kept at \/cache\/logs\/x\.log\)/);
  });

  it('keeps each run\'s log and only the newest few per scenario; other scenarios and files are left alone', () => {
    const cache = scratch();
    const dir = path.join(cache, 'logs');
    const paths = [];
    for (let i = 0; i < LOGS_KEPT + 3; i++) {
      const p = keepLog(cache, 'seed-64k', `run ${i}`);
      // Distinct mtimes even within one millisecond.
      utimesSync(p, new Date(1_000_000 + i * 1000), new Date(1_000_000 + i * 1000));
      paths.push(p);
    }
    writeFileSync(path.join(dir, 'seed-64k-noiommu-2026-01-01T00-00-00-000Z.log'), 'other scenario');
    writeFileSync(path.join(dir, 'notes.txt'), 'not a log');
    pruneLogs(dir, 'seed-64k-', LOGS_KEPT);
    const left = readdirSync(dir).sort();
    expect(left.filter((f) => f.startsWith('seed-64k-2'))).toHaveLength(LOGS_KEPT);
    expect(left).toContain('seed-64k-noiommu-2026-01-01T00-00-00-000Z.log');
    expect(left).toContain('notes.txt');
    expect(readFileSync(paths.at(-1)!, 'utf8')).toBe(`run ${LOGS_KEPT + 2}`);
  });
});
