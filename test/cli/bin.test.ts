import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const scratch = mkdtempSync(path.join(tmpdir(), 'vfio-bars-bin-'));
/** An install folder whose path a hand-built file URL gets wrong: '#' starts a fragment, '%41' decodes to 'A'. */
const installed = path.join(scratch, 'odd #1 %41 path', 'node_modules', 'vfio-bars');

beforeAll(() => {
  if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is not built: npm test builds it (npm run build)');
  mkdirSync(installed, { recursive: true });
  for (const entry of ['bin', 'dist', 'profiles', 'package.json']) {
    cpSync(path.join(root, entry), path.join(installed, entry), { recursive: true });
  }
  symlinkSync(path.join(root, 'node_modules'), path.join(installed, 'node_modules'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function runBin(binPath: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [binPath, ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('bin/vfio-bars.js as a program', () => {
  it('runs from the repository (npm start is this command)', () => {
    const out = runBin(path.join(root, 'bin', 'vfio-bars.js'), ['plan', '--profile', 'qemu-nvme', '--page-size', '64K']);
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('The problem, and the fix:');
  });

  it('runs from an install path containing "#" and "%": results on stdout, usage errors exit 2 on stderr', () => {
    const bin = path.join(installed, 'bin', 'vfio-bars.js');
    const version = runBin(bin, ['--version']);
    expect(version).toMatchObject({ status: 0, stdout: expect.stringMatching(/^vfio-bars \d+\.\d+\.\d+\n$/) as string });
    const plan = runBin(bin, ['plan', '--profile', 'qemu-e1000e', '--page-size', '4K']);
    expect(plan.status).toBe(0);
    expect(plan.stdout).toContain('BAR3');
    const bad = runBin(bin, ['plan', '--profile', 'qemu-nvme', '--page-size', '3K']);
    expect(bad).toMatchObject({ status: 2, stdout: '' });
    expect(bad.stderr).toMatch(/^vfio-bars: BAD_PAGE_SIZE: /);
  });
});
