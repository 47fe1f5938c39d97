/**
 * The pure half of `npm run bench:emu`'s huge-PFN part (test/emu/bench-emu-huge-pfn.ts) and the merge of both parts
 * into bench/emu-results.json and one README section (test/emu/bench-emu-results.ts): a made-up `HUGEPFN-RESULT`
 * line is parsed, tabulated, and merged without dropping the nested-guest figures.
 */
import { describe, expect, it } from 'vitest';
import {
  HUGE_PFN_PLACEMENTS, HugePfnParseError, hugePfnTable, parseHugePfnLog, wrap, type HugePfnBench, type HugePfnPlacementName,
  type HugePfnRound,
} from '../emu/bench-emu-huge-pfn.js';
import { benchEmuSection, mergeBenchEmuResults, type BenchEmuResults } from '../emu/bench-emu-results.js';
import { parseBenchLog } from '../emu/bench-emu-table.js';

function round(name: HugePfnPlacementName, faults: number, ms: number): HugePfnRound {
  const offset = name.startsWith('offset-') ? '0x10000' : '0x0';
  const congruent = name === 'library' || name === 'unplaced' || name === 'offset-library';
  const address = congruent ? offset : name === 'offset-size-only' ? '0x0' : '0x10000';
  const host = `0xffff0000${address.slice(2).padStart(4, '0')}`;
  return { address: host, addressModBlock: address, offsetModBlock: offset, congruent, faults, ms };
}

const FAULTS: Record<HugePfnPlacementName, number> = {
  'library': 2, 'misplaced': 16_384, 'unplaced': 2, 'offset-library': 8_192, 'offset-size-only': 16_383, 'offset-unplaced': 16_383,
};

function resultLine(rounds: number): string {
  const placements = HUGE_PFN_PLACEMENTS.map((name) => ({
    name,
    rounds: Array.from({ length: rounds }, (_, i) => round(name, FAULTS[name] + (i === 1 ? 1 : 0), FAULTS[name] / 100 + i)),
  }));
  const result = {
    ok: true, kernel: '6.12.117', pageSize: 65536, node: 'v22.20.0', thp: 'always [madvise] never',
    bar: {
      index: 2, size: '0x40000000', fileOffset: '0x20000000000', physical: '0x8000000000',
      block: '0x20000000', physicalModBlock: '0x0', iommu: 'iommufd',
    },
    placements,
  };
  return `HUGEPFN-RESULT ${JSON.stringify(result)}`;
}

const LOG = ['[    1.0] vfio-pci 0000:00:01.0: Adding to iommu group 0', 'HUGEPFN-HOST ivshmem 0000:00:01.0', resultLine(3)].join('\r\n');

describe('bench:emu huge-PFN table', () => {
  it('reads the result line and tabulates each placement: median faults and time (min–max), ratio to the library', () => {
    const result = parseHugePfnLog(LOG);
    expect(result.kernel).toBe('6.12.117');
    expect(result.placements.map((p) => p.name)).toEqual(HUGE_PFN_PLACEMENTS);
    const table = hugePfnTable(result);
    expect(table.split('\n')[0]).toContain('address mod 512 MiB (offset mod 512 MiB)');
    expect(table).toContain('| whole BAR, BarMapper: the library\'s placement (`hugePfnPlacement`) | 0x0 (0x0) | yes | 2 (2–3) '
      + '| 1.0 ms (0.0–2.0) | 1.0× |');
    expect(table).toContain('| whole BAR, BarMapper: the library\'s request + one page | 0x10000 (0x0) | no | 16,384 (16,384–16,385) '
      + '| 164.8 ms (163.8–165.8) | 161.6× |');
    // The offset rows compare with the library's placement of the same offset mapping.
    expect(table).toContain('| one page into the BAR: aligned by size (`hugePfnAlignment`, QEMU\'s rule) | 0x0 (0x10000) | no |');
    const offsetRow = /one page into the BAR: `hugePfnPlacement` \| 0x10000 \(0x10000\) \| yes \| 8,192 \(8,192–8,193\) .* \| 1\.0× \|/;
    expect(table).toMatch(offsetRow);
  });

  it('says what is missing: no line, a failed script, a placement without rounds', () => {
    expect(() => parseHugePfnLog('booted\nVFIOBARS-EXIT=0')).toThrow(HugePfnParseError);
    expect(() => parseHugePfnLog('HUGEPFN-RESULT {"ok":false,"error":{"code":"ENOENT","message":"no device"}}'))
      .toThrow(/the touch script failed: ENOENT no device/);
    expect(() => parseHugePfnLog(resultLine(0))).toThrow(/no rounds for placement library/);
  });
});

describe('bench/emu-results.json: both parts merged into one README section', () => {
  const hugePfn: HugePfnBench = {
    date: '2026-11-25T16:00:00.000Z', outerSeconds: 42, backend: 'memory-backend-ram size=1G', result: parseHugePfnLog(LOG),
  };
  const nested: BenchEmuResults = {
    date: '2026-11-25T14:31:38.895Z',
    nestedQemu: 'QEMU emulator version 7.2.22',
    outerSeconds: 72,
    runs: parseBenchLog([
      'BENCH-RUN qemu-default start uptime=10.00',
      `BENCH-RESULT ${JSON.stringify({
        windowSeen: true,
        window: { mmioExits: 10, consoleExits: 1, trappedReads: 0, trappedWrites: 9, trappedAccesses: 9 },
        whole: { mmioExits: 20, consoleExits: 5, trappedReads: 1, trappedWrites: 9, trappedAccesses: 10 },
      })}`,
      'BENCH-RUN qemu-default exit rc=0 uptime=20.00',
    ].join('\n')),
  };

  it('a huge-PFN run keeps the nested-guest figures, and a nested run keeps the huge-PFN ones', () => {
    const both = mergeBenchEmuResults(nested, { hugePfn });
    expect(both.runs).toEqual(nested.runs);
    expect(both.hugePfn).toEqual(hugePfn);
    const again = mergeBenchEmuResults(both, { ...nested, outerSeconds: 80 });
    expect(again.hugePfn).toEqual(hugePfn);
    expect(again.outerSeconds).toBe(80);
  });

  it('the section holds the nested comparison first, then the huge-PFN subsection; either alone when only it ran', () => {
    const section = benchEmuSection(mergeBenchEmuResults(nested, { hugePfn }));
    const nestedAt = section.indexOf('### Inside the emulated host');
    const hugeAt = section.indexOf('### Huge-PFN placement of a 1 GiB BAR on Linux 6.12');
    expect(nestedAt).toBe(0);
    expect(hugeAt).toBeGreaterThan(nestedAt);
    expect(section).toContain('Linux 6.12.117');
    expect(section).toContain('(16,384 pages)');
    expect(benchEmuSection({ hugePfn }).startsWith('### Huge-PFN placement')).toBe(true);
    expect(benchEmuSection(nested)).not.toContain('Huge-PFN');
  });
});

describe('wrap', () => {
  it('fills lines up to the width, keeps every word, and gives an over-long word its own line', () => {
    expect(wrap('a bb ccc dddd', 6)).toBe('a bb\nccc\ndddd');
    expect(wrap('  x   y ', 3)).toBe('x y');
    expect(wrap('tiny averyveryverylongword z', 8)).toBe('tiny\naveryveryverylongword\nz');
  });
});
