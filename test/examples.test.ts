/**
 * Every example runs: the TypeScript ones in-process (as a user's build would compile them), the plain
 * JavaScript ones with this Node as a user would run them, against the built package (npm test builds dist/).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { describeKvm } from './helpers/kvm-required.js';

const root = path.resolve(import.meta.dirname, '..');

/** Imports an example in-process and returns what it printed with console.log. */
async function printedBy(load: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
  try {
    await load();
  } finally {
    log.mockRestore();
  }
  return lines;
}

function runNode(file: string, args: string[] = []): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [path.join(root, file), ...args], { cwd: root, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('examples/', () => {
  it('plan-captured-device.ts plans the captured NVMe for a 64 KiB-page host', async () => {
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    try {
      await import('../examples/plan-captured-device.js');
    } finally {
      log.mockRestore();
    }
    expect(lines[0]).toBe('BAR0: device 0x4000 -> guest 0x20000 at 0x8000000000');
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}direct {2}0x0\+0x10000 at gpa 0x8000000000: expanded 0x4000 -> 0x10000/));
    expect(lines).toContain('  MSI-X table for the guest at 0x10000 (relocated)');
  });

  it('plain-javascript.mjs runs on this Node without `using`, and prints the same plan', () => {
    expect(existsSync(path.join(root, 'dist', 'index.js')), 'dist/ is built by npm test (npm run build)').toBe(true);
    const { status, stdout, stderr } = runNode('examples/plain-javascript.mjs');
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(stdout.split('\n')[0]).toBe('BAR0: device 0x4000 -> guest 0x20000 at 0x8000000000');
    expect(stdout).toContain('  direct  0x0+0x10000 at gpa 0x8000000000: expanded 0x4000 -> 0x10000');
  });

  it('plain-javascript.mjs --device takes its try/finally path and reports a typed error without a device', () => {
    const { status, stderr } = runNode('examples/plain-javascript.mjs', ['--device', '1f:1f.7']);
    expect(status).toBe(1);
    expect(stderr).toMatch(/^VfioError [A-Z_]+: /);
  });
});

describeKvm('examples/ on the real /dev/kvm', () => {
  it('map-memfd-device.ts maps the seed NVMe over a memfd and reads CAP through a vCPU; the relocated MSI-X table exits', async () => {
    const lines = await printedBy(() => import('../examples/map-memfd-device.js'));
    expect(lines).toContainEqual(expect.stringMatching(/^slot \d+: BAR0\+0x0 size 0x/));
    expect(lines).toContainEqual(expect.stringMatching(/^trapped 0x4000\+0x410 \(msix-table\): relocated MSI-X/));
    expect(lines).toContain('vCPU read of CAP at 0x40000000: 0x20100007ff');
    expect(lines).toContain('vCPU read of the MSI-X table at 0x40004000: MMIO exit (trapped, the VMM serves it)');
  });
});

describeKvm('examples/serve-guest-view.ts on the real /dev/kvm', () => {
  it('firmware places BAR0 through config space; CAP reads direct, the MSI-X table is served by PassthroughDevice', async () => {
    const lines = await printedBy(() => import('../examples/serve-guest-view.js'));
    expect(lines).toEqual([
      'vendor:device 0x1b36:0x10',
      "BAR0 sizes as 0x8000 (the device's 0x4000, doubled for the relocated MSI-X table)",
      expect.stringMatching(/^BAR0 at 0x40000000, slots: \d+$/),
      'vCPU read of CAP: 0x20100007ff',
      'MSI-X entry 0 address via MMIO exit at 0x40004000: handled=true, 0xfee00000',
      'an address outside the device: handled=false',
    ]);
  });
});
