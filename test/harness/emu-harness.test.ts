/**
 * The emulated tier's harness, tested on the host without QEMU: a silent or overlong guest fails with
 * "timed out after N s" and its log kept; logs and overlays are bounded; the guest's result line is parsed
 * against the host↔guest contract, failing with the JSON path that broke it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runConsole } from '../emu/console-runner.js';
import { keepNewest } from '../emu/retention.js';
import { ContractError, parseGuestResult, type GuestSuccess } from '../emu/guest-contract.js';
import { EmuTimeoutError } from '../emu/harness.js';
import { recordRun } from '../emu/run-guest.js';
import { captureError } from '../helpers/capture-error.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'vfio-bars-harness-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A success line as guest-test.mjs prints it for the seed scenario. */
function seedResult(): GuestSuccess {
  const read = (value: string) => ({ value });
  return {
    ok: true, scenario: 'seed-64k-smmu', node: 'v22.20.0', kernel: '6.12.57', iommuRequested: 'auto',
    pageSize: 65536, iommu: 'iommufd', iommuReason: 'iommufd (auto: VFIO cdev and /dev/iommu present)',
    mmioDma: { code: 'IOMMUFD_NO_DMABUF_EXPORT', message: 'no dma-buf' }, dmaMap: false, mapperWarnings: [],
    bar0: { size: '0x4000', flags: 15, caps: ['msix-mappable'] }, msix: { vectors: 65, table: '0x2000', pba: '0x3000', bir: 0 },
    description: {}, steps: [{ name: 'naive', error: { code: 'EINVAL', message: 'x' }, isKvmError: true }],
    plan: {
      guestSize: '0x20000',
      mappings: [{ size: '0x10000', gpa: '0x4000000000', reason: 'expanded' }],
      trapped: [{ offset: '0x10000', size: '0x1000', kind: 'msix-table', cause: 'msix-relocated', reason: 'relocated table' }],
      msix: { relocated: true },
      warnings: [{ bar: 0, code: 'expanded', message: 'grown to a page' }],
    },
    slotsAfterMap: 1, deviceMappingsAfterMap: 1, host: { cap: '0x4018200f0107ff', vs: '0x10400' },
    guest: { cap: read('0x4018200f0107ff'), vs: read('0x10400') },
    move: { state: 'direct', cap: read('0x4018200f0107ff'), old: { mmio: '0x4000000000' } },
    afterUnmap: { slots: 0, mappedBars: 0, deviceMappings: 0, read: { mmio: '0x5000000000' } },
  };
}
const console = (result: unknown): string =>
  `[    0.1] booting\nVFIOBARS-LOG naive {}\nVFIOBARS-RESULT ${JSON.stringify(result)}\nVFIOBARS-EXIT=0\n`;

describe('runConsole: deadlines', () => {
  it('a guest that goes silent is killed: "timed out after N s", with the console so far', async () => {
    const outcome = await runConsole('sh', ['-c', 'echo booting; sleep 30'], { totalMs: 20_000, silenceMs: 400 });
    expect(outcome.kind).toBe('timed-out');
    if (outcome.kind !== 'timed-out') return;
    expect(outcome.message).toMatch(/^timed out after \d+ s \(no console output for 0\.4 s\)$/);
    expect(outcome.console).toBe('booting\n');
  });

  it('a guest that keeps talking past the total limit is killed too', async () => {
    const outcome = await runConsole('sh', ['-c', 'while :; do echo tick; sleep 0.05; done'], { totalMs: 500, silenceMs: 5_000 });
    expect(outcome).toMatchObject({
      kind: 'timed-out',
      message: expect.stringMatching(/^timed out after \d+ s \(total limit 0\.5 s\)$/) as string,
    });
  });

  it('a run that ends on its own returns its console and exit status', async () => {
    const outcome = await runConsole('sh', ['-c', 'echo out; echo err >&2; exit 3'], { totalMs: 10_000, silenceMs: 5_000 });
    expect(outcome).toMatchObject({ kind: 'exited', code: 3 });
    expect(outcome.console).toContain('out\n');
    expect(outcome.console).toContain('err\n');
  });

  it('an emulator that cannot start rejects', async () => {
    await expect(runConsole('/nonexistent/qemu', [], { totalMs: 1000, silenceMs: 1000 })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('recordRun: logs kept, timeouts and contract breaks named', () => {
  it('a timed-out run throws EmuTimeoutError naming the kept log, which holds the console', () => {
    const cache = tempDir();
    const error = captureError(
      () => recordRun(
        cache,
        'seed',
        'qemu …',
        { kind: 'timed-out', console: 'booting\n', message: 'timed out after 120 s (no console output for 120 s)' },
      )
    );
    expect(error).toBeInstanceOf(EmuTimeoutError);
    expect((error as Error).message).toMatch(/^seed: guest timed out after 120 s .*\(log kept at .*\):\nbooting/);
    const logPath = (error as EmuTimeoutError).logPath;
    expect(readFileSync(logPath, 'utf8')).toBe('qemu …\n\nbooting\n');
  });

  it('a good run parses against the contract and keeps its log', () => {
    const cache = tempDir();
    const logs = path.join(cache, 'logs');
    const { result, logPath } = recordRun(cache, 'seed', 'qemu', { kind: 'exited', console: console(seedResult()), code: 0, signal: null });
    expect(result).toEqual(seedResult());
    expect(readdirSync(logs)).toEqual([path.basename(logPath)]);
  });

  it('logs are bounded: only the newest 40 stay', () => {
    const cache = tempDir();
    const logs = path.join(cache, 'logs');
    mkdirSync(logs);
    for (let i = 0; i < 45; i++) writeFileSync(path.join(logs, `old-${String(i).padStart(2, '0')}.log`), '');
    for (let i = 0; i < 45; i++) utimesSync(path.join(logs, `old-${String(i).padStart(2, '0')}.log`), 1000 + i, 1000 + i);
    recordRun(cache, 'seed', 'qemu', { kind: 'exited', console: console(seedResult()), code: 0, signal: null });
    const left = readdirSync(logs);
    expect(left).toHaveLength(40);
    expect(left.filter((n) => n.startsWith('seed-'))).toHaveLength(1);
    expect(left).not.toContain('old-05.log');
    expect(left).toContain('old-44.log');
  });
});

describe('keepNewest', () => {
  it('keeps the newest N matching entries (files or directories) and ignores others; a missing dir is fine', () => {
    const dir = tempDir();
    for (let i = 0; i < 5; i++) {
      mkdirSync(path.join(dir, `overlay-${i}`));
      utimesSync(path.join(dir, `overlay-${i}`), 100 + i, 100 + i);
    }
    writeFileSync(path.join(dir, 'unrelated'), '');
    expect(keepNewest(dir, /^overlay-/, 2).sort()).toEqual(['overlay-0', 'overlay-1', 'overlay-2']);
    expect(readdirSync(dir).sort()).toEqual(['overlay-3', 'overlay-4', 'unrelated']);
    expect(keepNewest(path.join(dir, 'missing'), /./, 1)).toEqual([]);
  });
});

describe('the host↔guest result contract', () => {
  it('a failure line needs only ok, node and the error', () => {
    const r = parseGuestResult(console({ ok: false, node: 'v20.19.0', error: { message: 'boom', stack: 'at x' } }));
    expect(r).toMatchObject({ ok: false, error: { message: 'boom' } });
  });

  it('names the JSON path that breaks the contract', () => {
    const bad = seedResult() as unknown as { guest: { cap: { value: unknown } } };
    bad.guest.cap.value = 12;
    const error = captureError(() => parseGuestResult(console(bad)));
    expect(error).toBeInstanceOf(ContractError);
    expect((error as ContractError).path).toBe('$.guest.cap.value');
    expect((error as Error).message).toContain('expected a 0x hex string, got 12');
  });

  it('a missing field, an unknown iommu mode, no result line, two lines, or not JSON: each a ContractError', () => {
    const { afterUnmap: _dropped, ...missing } = seedResult();
    expect(captureError(() => parseGuestResult(console(missing)))).toMatchObject({ path: '$.afterUnmap' });
    expect(captureError(() => parseGuestResult(console({ ...seedResult(), iommu: 'vfio' })))).toMatchObject({ path: '$.iommu' });
    expect(captureError(() => parseGuestResult('booting\nVFIOBARS-EXIT=1\n'))).toMatchObject({ path: '(console)', actual: '0 lines' });
    expect(captureError(() => parseGuestResult(console(seedResult()) + console(seedResult())))).toMatchObject({ actual: '2 lines' });
    expect(captureError(() => parseGuestResult('VFIOBARS-RESULT {"ok": tru\n'))).toBeInstanceOf(ContractError);
    expect(captureError(() => parseGuestResult(console({ node: 'v22' })))).toMatchObject({ path: '$.ok' });
  });
});
