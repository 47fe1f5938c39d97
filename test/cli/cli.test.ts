import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { PROFILES } from '../../src/cli/profiles.js';
import { descriptionToJSON } from '../../src/vfio/index.js';

describe('vfio-bars CLI', () => {
  it('plan --profile qemu-nvme --page-size 64K shows the naive EINVAL and the expanded, relocated plan', () => {
    const { output, exitCode } = run(['plan', '--profile', 'qemu-nvme', '--page-size', '64K']);
    expect(exitCode).toBe(0);
    expect(output).toContain('KVM_SET_USER_MEMORY_REGION(memory_size=0x4000) -> EINVAL');
    expect(output).toContain('expanded 0x4000 -> 0x10000: sub-page BAR, page-aligned');
    expect(output).toContain('table at 0x10000 (0x410 bytes), PBA at 0x11000 (0x10 bytes) [relocated]');
    expect(output).toContain('guest BAR 0x20000 (128 KiB)');
    expect(output).toMatch(/trapped: msix-table\s*│ 0x10000\s*│ 0x410\s*│ 0x2000/);
  });

  it('plan --json prints the plan JSON with GPAs from --bar-gpa', () => {
    const { output, exitCode } = run(['plan', '--profile', 'qemu-nvme', '--page-size', '0x10000', '--bar-gpa', '0=0x8000000000', '--json']);
    expect(exitCode).toBe(0);
    const plan = JSON.parse(output) as { pageSize: string; bars: { mappings: { gpa: string; size: string }[]; msix: { table: { offset: string } } }[] };
    expect(plan.pageSize).toBe('0x10000');
    expect(plan.bars[0]!.mappings).toMatchObject([{ gpa: '0x8000000000', size: '0x10000' }]);
    expect(plan.bars[0]!.msix.table.offset).toBe('0x10000');
    const trapped = (plan as unknown as { bars: { trapped: unknown[] }[] }).bars[0]!.trapped;
    expect(trapped[0]).toMatchObject({ barOffset: '0x10000', size: '0x410', kind: 'msix-table', fileOffset: '0x2000', cause: 'msix-relocated' });
  });

  it('plan --description FILE replays a captured description; --msix hole says there is no direct mapping', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vfio-bars-cli-'));
    const file = path.join(dir, 'nvme.json');
    writeFileSync(file, JSON.stringify(descriptionToJSON(PROFILES['qemu-nvme']!.description)));
    const { output, exitCode } = run(['plan', '--description', file, '--page-size', '64K', '--msix', 'hole']);
    expect(exitCode).toBe(0);
    expect(output).toContain('no direct mapping at all');
  });

  it('usage errors exit 2 with one clear line and the usage', () => {
    for (const argv of [['plan'], ['plan', '--profile', 'nope'], ['plan', '--profile', 'qemu-nvme', '--page-size', 'big'], ['plan', '--bogus'], ['frobnicate'], ['inspect'], ['plan', '--profile', 'qemu-nvme', '--bar-gpa', '7=0']]) {
      const { output, exitCode } = run(argv);
      expect(exitCode, argv.join(' ')).toBe(2);
      expect(output.split('\n')[0]).toMatch(/^vfio-bars: /);
      expect(output).toContain('usage:');
    }
    expect(run(['plan', '--profile', 'nope']).output).toContain('known: qemu-nvme, qemu-nvme-64k-bar');
  });

  it('a bad device exits 1 with a typed one-line error, no stack', () => {
    const { output, exitCode } = run(['inspect', '0000:00:1f.7']);
    expect(exitCode).toBe(1);
    expect(output).toMatch(/^vfio-bars: VfioError NO_IOMMU_GROUP: /);
    expect(output).not.toContain('    at ');
    expect(run(['map', '../etc/passwd']).output).toMatch(/^vfio-bars: VfioError BAD_BDF: /);
  });

  it('the built bin runs as a program (npm start is this command)', () => {
    const root = path.resolve(import.meta.dirname, '..', '..');
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root });
    const out = execFileSync(process.execPath, ['dist/cli/main.js', 'plan', '--profile', 'qemu-nvme', '--page-size', '64K'], { cwd: root, encoding: 'utf8' });
    expect(out).toContain('The problem, and the fix:');
    const bad = spawnSync(process.execPath, ['dist/cli/main.js', 'plan'], { cwd: root, encoding: 'utf8' });
    expect(bad.status).toBe(2);
  }, 120_000);
});
