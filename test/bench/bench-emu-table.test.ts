/**
 * The pure half of `npm run bench:emu` (test/emu/bench-emu-table.ts): a made-up outer log with the lines
 * the emulated host prints is parsed into runs, tabulated with ratios against the example VMM, and the
 * README's marked section is replaced in place (never duplicated).
 */
import { describe, expect, it } from 'vitest';
import {
  BenchParseError, README_BEGIN, README_END, benchTable, median, parseBenchLog, ratio, replaceReadmeSection, wholeRunTable,
} from '../emu/bench-emu-table.js';

function result(name: string, window: [number, number, number, number], whole: [number, number, number, number]): string {
  const counts = ([mmioExits, consoleExits, trappedReads, trappedWrites]: number[]) => ({
    mmioExits, consoleExits, trappedReads, trappedWrites, trappedAccesses: trappedReads! + trappedWrites!,
  });
  return `BENCH-RESULT ${JSON.stringify({ name, windowSeen: true, window: counts(window), whole: counts(whole) })}`;
}

const LOG = [
  'BENCH-HOST QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)',
  'BENCH-RUN qemu-default start uptime=10.00',
  'BENCH-DD-1M rounds=1 seconds=0.250000 16+0 records out ',
  'BENCH-DD-4K rounds=1 seconds=3.000000 4096+0 records out ',
  'BENCH-RUN qemu-default exit rc=0 uptime=40.50',
  result('qemu-default', [9200, 17, 0, 8300], [20000, 5000, 100, 8400]),
  'BENCH-RUN example-vmm start uptime=41.00',
  'BENCH-DD-1M rounds=2 seconds=0.10,0.30 16+0 records out ',
  'BENCH-DD-4K rounds=2 seconds=1.50,1.70 4096+0 records out ',
  result('example-vmm', [1817, 17, 0, 0], [3000, 2000, 40, 132]),
  'BENCH-RUN example-vmm exit rc=0 uptime=61.00',
].join('\r\n');

describe('bench:emu table', () => {
  it('reads each run between its start and exit lines, with its rounds, dd times and uptimes', () => {
    const runs = parseBenchLog(LOG);
    expect(runs.map((r) => r.name)).toEqual(['qemu-default', 'example-vmm']);
    expect(runs[0]).toMatchObject({ rounds: 1, dd1m: [0.25], dd4k: [3], runSeconds: 30.5 });
    expect(runs[0]!.window.trappedWrites).toBe(8300);
    expect(runs[1]).toMatchObject({ rounds: 2, dd4k: [1.5, 1.7], runSeconds: 20 });
  });

  it('tabulates exits without the console, and ratios against the default QEMU run', () => {
    const table = benchTable(parseBenchLog(LOG));
    expect(table).toContain('| QEMU 7.2, `vfio-pci` default | 8,300 (0 reads, 8,300 writes) | 9,183 | 0.25 s | 3.00 s | 1.00× | 1.00× |');
    expect(table).toContain('| example VMM (vfio-bars) | 0 (0 reads, 0 writes) | 900 | 0.10 s (0.10–0.30) | 1.50 s (1.50–1.70) | 0.10× | 0.50× |');
    expect(wholeRunTable(parseBenchLog(LOG))).toContain('| QEMU 7.2, `vfio-pci` default | 8,500 | 20,000 | 5,000 | 30.5 s |');
  });

  it('says which run printed no result', () => {
    expect(() => parseBenchLog('BENCH-RUN qemu-relo-bar0 start uptime=1\nBENCH-RUN qemu-relo-bar0 exit rc=137 uptime=2'))
      .toThrow(BenchParseError);
  });

  it('median: the lower middle of an even count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2);
    expect(median([])).toBeUndefined();
  });

  it('ratio: a dash when the base is zero or unknown', () => {
    expect(ratio(3, 0)).toBe('–');
    expect(ratio(undefined, 2)).toBe('–');
    expect(ratio(3, 2)).toBe('1.50×');
  });

  it('inserts the marked section before ## Limits, then replaces it in place', () => {
    const readme = '# x\n\n## Performance\n\ntext\n\n## Limits\n\nmore\n';
    const once = replaceReadmeSection(readme, 'first');
    expect(once).toBe(`# x\n\n## Performance\n\ntext\n\n${README_BEGIN}\nfirst\n${README_END}\n\n## Limits\n\nmore\n`);
    const twice = replaceReadmeSection(once, 'second');
    expect(twice).toBe(once.replace('first', 'second'));
  });
});
