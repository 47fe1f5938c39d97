/**
 * Smoke test of `npm run bench`: every case runs a few iterations against the C baseline (compiled here),
 * so the benchmark cannot rot; and the README section is generated from the results.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { runBench } from '../bench/bench.js';
import { README_BEGIN, README_END, updateReadme } from '../bench/report.js';
import { spread } from '../bench/runner.js';
import { describeKvm } from './helpers/kvm-required.js';

const benchDir = path.resolve(import.meta.dirname, '..', 'bench');

it('spread: median and quartiles interpolate', () => {
  expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, q1: 1.75, q3: 3.25, relIqr: 0.6 });
});

describeKvm('bench (a few iterations of every case)', () => {
  it('runs every case against C and writes the README section', async () => {
    const results = await runBench({ scale: 0.002, rounds: 2, sourceDir: benchDir });
    const ids = ['noop', 'add-delete', 'move-1', 'move-4', 'map-unmap', 'move-100', 'move-10000', 'trapped', 'msi', 'msi-relay',
      'msi-relay-thread'];
    expect(results.cases.map((r) => r.id)).toEqual(ids);
    for (const r of results.cases) {
      expect(r.lib.median, r.id).toBeGreaterThan(0);
      expect(r.c.median, r.id).toBeGreaterThan(0);
      expect(Number.isFinite(r.ratio), r.id).toBe(true);
    }
    expect(results.derived.map((d) => d.name)).toContain('per-move growth, 100 → 10 000 slots');
    expect(results.derived.map((d) => d.name)).toContain('JavaScript relay on the event loop / direct irqfd');
    // KVM refuses a VM's ioctls from any other process: why the C baseline keeps its own VM.
    expect(results.derived[0]!.value).toBe('KVM_SET_USER_MEMORY_REGION → EIO');

    const readme = path.join(mkdtempSync(path.join(tmpdir(), 'bench-readme-')), 'README.md');
    writeFileSync(readme, `# x\n${README_BEGIN}\nold\n${README_END}\ntail\n`);
    updateReadme(readme, results);
    const text = readFileSync(readme, 'utf8');
    expect(text).toContain('| trapped MMIO access round trip |');
    expect(text).not.toContain('\nold\n');
    expect(text.endsWith(`${README_END}\ntail\n`)).toBe(true);
  });
});
