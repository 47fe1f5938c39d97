import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { MAX_DESCRIPTION_BYTES } from '../../src/cli/read-description.js';
import { descriptionToJSON } from '../../src/vfio/index.js';
import { qemuNvme } from '../helpers/profiles.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vfio-bars-cli-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('vfio-bars plan', () => {
  it('plan --profile qemu-nvme --page-size 64K shows the naive EINVAL and the expanded, relocated plan', () => {
    const { output, exitCode, stream } = run(['plan', '--profile', 'qemu-nvme', '--page-size', '64K']);
    expect(exitCode).toBe(0);
    expect(stream).toBe('stdout');
    expect(output).toContain('KVM_SET_USER_MEMORY_REGION(memory_size=0x4000) -> EINVAL');
    expect(output).toContain('expanded 0x4000 -> 0x10000: sub-page BAR, page-aligned');
    expect(output).toContain('table at 0x10000 (0x410 bytes), PBA at 0x11000 (0x10 bytes) [relocated]');
    expect(output).toContain('guest BAR 0x20000 (128 KiB)');
    expect(output).toMatch(/trapped: msix-table\s*│ 0x10000\s*│ 0x410\s*│ 0x2000/);
  });

  it('plan --json prints the plan JSON with GPAs from --bar-gpa', () => {
    const { output, exitCode } = run(['plan', '--profile', 'qemu-nvme', '--page-size', '0x10000', '--bar-gpa', '0=0x8000000000', '--json']);
    expect(exitCode).toBe(0);
    type PlanJSON = { pageSize: string; bars: { mappings: { gpa: string; size: string }[]; msix: { table: { offset: string } } }[] };
    const plan = JSON.parse(output) as PlanJSON;
    expect(plan.pageSize).toBe('0x10000');
    expect(plan.bars[0]!.mappings).toMatchObject([{ gpa: '0x8000000000', size: '0x10000' }]);
    expect(plan.bars[0]!.msix.table.offset).toBe('0x10000');
    const trapped = (plan as unknown as { bars: { trapped: unknown[] }[] }).bars[0]!.trapped;
    expect(trapped[0]).toMatchObject({
      barOffset: '0x10000',
      size: '0x410',
      kind: 'msix-table',
      fileOffset: '0x2000',
      cause: 'msix-relocated',
    });
  });

  it('plan --description FILE replays a captured description; --msix hole says there is no direct mapping', () => {
    const file = path.join(dir, 'nvme.json');
    writeFileSync(file, JSON.stringify(descriptionToJSON(qemuNvme)));
    const { output, exitCode } = run(['plan', '--description', file, '--page-size', '64K', '--msix', 'hole']);
    expect(exitCode).toBe(0);
    expect(output).toContain('no direct mapping at all');
  });

  it('every profile that `profiles` lists plans', () => {
    const names = run(['profiles']).output.split('\n').map((line) => line.split(' ')[0]!);
    expect(names).toEqual(['qemu-nvme', 'qemu-nvme-64k-bar', 'qemu-nvme-unaligned', 'qemu-e1000e']);
    for (const name of names) expect(run(['plan', '--profile', name, '--page-size', '4K']).exitCode, name).toBe(0);
  });

  it('--profile __proto__ (or any inherited name) is an unknown profile: typed, exit 2', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const { output, exitCode } = run(['plan', '--profile', name]);
      expect(exitCode, name).toBe(2);
      expect(output, name).toMatch(/^vfio-bars: UNKNOWN_PROFILE: unknown profile /);
      expect(output).toContain('known: qemu-nvme, qemu-nvme-64k-bar');
    }
  });

  it('--page-size must be a power of two from 4K: 3K, 0, 6000 and 2G are usage errors (exit 2)', () => {
    for (const size of ['3K', '0', '6000', '2K', '2G', '0x1001', '64Q', '']) {
      const { output, exitCode } = run(['plan', '--profile', 'qemu-nvme', '--page-size', size]);
      expect(exitCode, size).toBe(2);
      expect(output, size).toMatch(/^vfio-bars: /);
      expect(output).toContain('usage: vfio-bars plan');
    }
    expect(run(['plan', '--profile', 'qemu-nvme', '--page-size', '16K']).exitCode).toBe(0);
  });

  it('a BAR given twice with --bar-gpa is a usage error, not "the last one wins"', () => {
    const twice = ['--bar-gpa', '0=0x80000000', '--bar-gpa', '0=0x90000000'];
    const { output, exitCode } = run(['plan', '--profile', 'qemu-nvme', '--page-size', '4K', ...twice]);
    expect(exitCode).toBe(2);
    expect(output).toMatch(/^vfio-bars: DUPLICATE_BAR_GPA: --bar-gpa: BAR0 given twice/);
  });

  it('--description /dev/zero stops after 1 MiB with a typed error (exit 2), no heap exhaustion', () => {
    const started = Date.now();
    const { output, exitCode } = run(['plan', '--description', '/dev/zero']);
    expect(exitCode).toBe(2);
    expect(output).toMatch(/^vfio-bars: DESCRIPTION_TOO_LARGE: --description "\/dev\/zero": larger than 1048576 bytes/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a huge (sparse) description file is refused without reading it all; a folder or a missing file is unreadable', () => {
    const huge = path.join(dir, 'huge.json');
    writeFileSync(huge, '');
    truncateSync(huge, 8 * 1024 ** 3);
    expect(run(['plan', '--description', huge]).output).toMatch(/DESCRIPTION_TOO_LARGE/);
    const exact = path.join(dir, 'exact.json');
    writeFileSync(exact, ' '.repeat(MAX_DESCRIPTION_BYTES));
    expect(run(['plan', '--description', exact]).output).toMatch(/DESCRIPTION_NOT_JSON/);
    const folder = run(['plan', '--description', dir]);
    expect(folder.exitCode).toBe(2);
    expect(folder.output).toMatch(/DESCRIPTION_UNREADABLE.*EISDIR/);
    expect(run(['plan', '--description', path.join(dir, 'nope.json')]).output).toMatch(/DESCRIPTION_UNREADABLE.*ENOENT/);
    const notJson = path.join(dir, 'not.json');
    writeFileSync(notJson, '{');
    const broken = run(['plan', '--description', notJson]);
    expect(broken.exitCode).toBe(2);
    expect(broken.output).toMatch(/^vfio-bars: DESCRIPTION_NOT_JSON/);
  });
});
