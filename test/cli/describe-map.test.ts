import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/cli-error.js';
import { run } from '../../src/cli/main.js';
import { MMIO_WINDOW_END, MMIO_WINDOW_START, assignGuestAddresses } from '../../src/cli/self-test-layout.js';
import { planBarMappings } from '../../src/plan/planner.js';
import { captureError } from '../helpers/capture-error.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { qemuNvme } from '../helpers/profiles.js';
import { FakeSysfs, MSIX_PBA, MSIX_TABLE, testEnvironment } from './cli-environment.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vfio-bars-cli-describe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface MapReport {
  bdf: string;
  iommu: string;
  dmaMapped: boolean;
  bars: { index: number; guestAddress: string; mappings: number }[];
  verify: {
    ok: boolean;
    checks: { deviceOffset: string; ok: boolean }[];
    notCompared: { what: string; deviceOffset: string; size: string }[];
  };
}

function vfioSysfs(): FakeSysfs {
  const sysfs = new FakeSysfs();
  sysfs.bind('0000:01:00.0', 'vfio-pci');
  return sysfs;
}

describe('vfio-bars describe', () => {
  it('describe BDF --out FILE writes the DeviceDescription JSON that plan --description reads', () => {
    using sysfs = vfioSysfs();
    const env = testEnvironment(sysfs);
    const file = path.join(dir, 'device.json');
    const written = run(['describe', '01:00.0', '--out', file], env);
    expect(written).toMatchObject({ exitCode: 0, stream: 'stdout' });
    expect(written.output).toBe(`wrote the description of 0000:01:00.0 to ${file} (vfio-bars plan --description ${file})`);
    const json = JSON.parse(readFileSync(file, 'utf8')) as { bdf: string; msix: { table: { offset: string } } };
    expect(json).toMatchObject({ bdf: '0000:01:00.0', msix: { table: { offset: '0x0' } } });
    expect(run(['describe', '01:00.0'], env).output).toBe(readFileSync(file, 'utf8').trimEnd());
    const planned = run(['plan', '--description', file, '--page-size', '4K'], env);
    expect(planned.exitCode).toBe(0);
    expect(planned.output).toContain('[relocated]');
  });

  it('an --out that cannot be written is a typed error, exit 1', () => {
    using sysfs = vfioSysfs();
    const { output, exitCode } = run(['describe', '01:00.0', '--out', path.join(dir, 'missing', 'x.json')], testEnvironment(sysfs));
    expect(exitCode).toBe(1);
    expect(output).toMatch(/^vfio-bars: CliError OUT_UNWRITABLE: .*ENOENT/);
  });
});

describe('vfio-bars map: guest addresses of the scratch VM', () => {
  it('every BAR lands below 4 GiB, naturally aligned, without overlap', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: 0x1_0000n });
    const addresses = assignGuestAddresses(plan);
    for (const bar of plan.bars) {
      const at = addresses.get(bar.index)!;
      expect(at).toBeGreaterThanOrEqual(MMIO_WINDOW_START);
      expect(at + bar.guestSize).toBeLessThanOrEqual(MMIO_WINDOW_END);
      expect(at % bar.guestSize).toBe(0n);
    }
  });

  it('BARs that do not fit below 4 GiB are a typed error, never a placement above it', () => {
    const regions = qemuNvme.regions.map((r) => (r.index === 0 ? { ...r, size: 0x1_0000_0000n } : r));
    const big = { ...qemuNvme, regions, msix: undefined };
    const error = captureError(() => assignGuestAddresses(planBarMappings(big, { pageSize: 0x1000n })));
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ code: 'NO_ROOM_BELOW_4G' });
  });
});

describeKvm('vfio-bars map on the real /dev/kvm (a memfd stands in for the device)', () => {
  it('map --verify compares every direct mapping except the MSI-X table and PBA, and says so', () => {
    using sysfs = vfioSysfs();
    const { output, exitCode, stream } = run(['map', '01:00.0', '--verify', '--json'], testEnvironment(sysfs));
    expect(exitCode, output).toBe(0);
    expect(stream).toBe('stdout');
    const report = JSON.parse(output) as MapReport;
    expect(report.verify.ok).toBe(true);
    // One word per direct mapping: the first outside the MSI-X table, which starts the BAR here (reading offset 0
    // would compare the real table with pread's all-ones and report a false mismatch).
    expect(report.verify.checks).toEqual([expect.objectContaining({ deviceOffset: '0x100', gpa: '0x80000100', ok: true })]);
    expect(report.verify.notCompared).toEqual([
      expect.objectContaining({ what: 'msix-table', deviceOffset: '0x0', size: '0x100' }),
      expect.objectContaining({ what: 'msix-pba', deviceOffset: '0x3800', size: '0x8' }),
    ]);
    for (const check of report.verify.checks) {
      const offset = BigInt(check.deviceOffset);
      expect(offset >= MSIX_TABLE.offset && offset < MSIX_TABLE.offset + MSIX_TABLE.size).toBe(false);
      expect(offset >= MSIX_PBA.offset && offset < MSIX_PBA.offset + MSIX_PBA.size).toBe(false);
    }
    for (const bar of report.bars) expect(BigInt(bar.guestAddress)).toBeLessThan(0x1_0000_0000n);
  });

  it('the text report names what was not compared and why', () => {
    using sysfs = vfioSysfs();
    const { output, exitCode } = run(['map', '01:00.0', '--verify'], testEnvironment(sysfs));
    expect(exitCode, output).toBe(0);
    expect(output).toContain('not compared: BAR0+0x0 (0x100 bytes, msix-table): vfio-pci\'s pread returns all-ones over the MSI-X table');
    expect(output).toMatch(/mapped \d+ KVM slot\(s\), verified$/);
  });

  it('a real mismatch exits 1 with the JSON report still on stdout', () => {
    using sysfs = vfioSysfs();
    const { output, exitCode, stream } = run(['map', '01:00.0', '--verify', '--json'], testEnvironment(sysfs, { preadLie: 0x100n }));
    expect(exitCode).toBe(1);
    expect(stream).toBe('stdout');
    const report = JSON.parse(output) as MapReport;
    expect(report.verify.ok).toBe(false);
    expect(report.verify.checks.filter((c) => !c.ok)).toEqual([expect.objectContaining({ deviceOffset: '0x100', ok: false })]);
    const text = run(['map', '01:00.0', '--verify'], testEnvironment(sysfs, { preadLie: 0x100n }));
    expect(text).toMatchObject({ exitCode: 1, stream: 'stdout' });
    expect(text.output).toMatch(/MISMATCH[\s\S]*verification FAILED$/);
  });

  it('--msix hole, --iommu and --dma-map reach the mapper (noiommu: nothing to DMA-map)', () => {
    using sysfs = vfioSysfs();
    const argv = ['map', '01:00.0', '--msix', 'hole', '--iommu', 'noiommu', '--dma-map', '--json'];
    const env = testEnvironment(sysfs);
    const { output, exitCode } = run(argv, env);
    expect(env.iommus).toEqual(['noiommu']);
    expect(exitCode, output).toBe(0);
    const report = JSON.parse(output) as MapReport;
    expect(report).toMatchObject({ bdf: '0000:01:00.0', iommu: 'noiommu', dmaMapped: true });
    const inspected = run(['inspect', '01:00.0', '--dma-map', '--msix', 'hole'], testEnvironment(sysfs));
    expect(inspected.exitCode).toBe(0);
    expect(inspected.output).toContain('DMA mapping: requested, but noiommu mode has no IOMMU to program');
    expect(inspected.output).toContain('MSI-X strategy: hole');
  });

  it('on a terminal, map reports its steps on stderr and clears them before the report', () => {
    using sysfs = vfioSysfs();
    const env = testEnvironment(sysfs, { tty: true });
    expect(run(['map', '01:00.0', '--verify', '--iommu', 'type1'], env).exitCode).toBe(0);
    expect(env.iommus).toEqual(['type1']);
    const shown = env.stderr.written.join('');
    for (const step of [
      'opening 0000:01:00.0 (iommu type1)',
      'describing 0000:01:00.0',
      'mapping 1 BAR(s) into a scratch VM',
      'verifying: ',
    ]) {
      expect(shown).toContain(step);
    }
    expect(env.stderr.written.at(-1)).toBe('\r\x1b[K');
  });
});
