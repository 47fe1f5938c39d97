/**
 * `npm run bench:emu`'s huge-PFN part (alone: `npm run bench:emu -- huge-pfn`; a benchmark, not a CI test): one boot
 * of the emulated 64 KiB aarch64 host on Linux 6.12 (THP built in, so arm64 has huge PFN maps) with QEMU's
 * ivshmem-plain, whose BAR2 is a 1 GiB RAM backend. Inside, bench/emu/huge-pfn-run.sh binds it to vfio-pci and
 * bench/emu/huge-pfn-touch.mjs maps BAR2 through the library's BarMapper with its huge-PFN placement, misplaced
 * by one page, and unplaced, touching every page. Prints the table, merges the result into
 * bench/emu-results.json (`hugePfn`) and regenerates the README's bench:emu section from the merged file.
 * Preparation: test/emu/prepare.sh (KERNEL_612_64K, base initramfs, the arm64 shim and koffi).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { hugePfnTable, parseHugePfnLog } from './bench-emu-huge-pfn.js';
import { saveBenchEmuResults } from './bench-emu-results.js';
import { bootOuterHost, outerHostArgs } from './harness.js';
import { buildInitrd, prepare } from './run-guest.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const BENCH = path.join(REPO, 'bench', 'emu');
const ROUNDS = Number(process.env.HUGEPFN_ROUNDS ?? 5);
const OUTER_TIMEOUT_S = 900;
const BACKEND = 'memory-backend-ram,id=ivm,size=1G';

/** The tier's initrd (base + library) plus /test/run.sh = huge-pfn-run.sh and the touch script under /test/lib. */
function hugePfnInitrd(base: string): string {
  const stage = path.dirname(base);
  const root = path.join(stage, 'huge-pfn-root');
  mkdirSync(path.join(root, 'test', 'lib', 'bench', 'emu'), { recursive: true });
  cpSync(path.join(BENCH, 'huge-pfn-touch.mjs'), path.join(root, 'test', 'lib', 'bench', 'emu', 'huge-pfn-touch.mjs'));
  cpSync(path.join(BENCH, 'huge-pfn-run.sh'), path.join(root, 'test', 'run.sh'));
  writeFileSync(path.join(root, 'test', 'bench.env'), `HUGEPFN_ROUNDS='${ROUNDS}'\n`);
  execFileSync('sh', ['-c', 'find test | sort | cpio -o -H newc --quiet -R 0:0 > ../huge-pfn.cpio'], { cwd: root });
  rmSync(root, { recursive: true });
  const initrd = path.join(stage, 'initrd-huge-pfn.cpio');
  writeFileSync(initrd, Buffer.concat([readFileSync(base), readFileSync(path.join(stage, 'huge-pfn.cpio'))]));
  return initrd;
}

it('bench:emu huge-pfn: touching a 1 GiB vfio-pci BAR on Linux 6.12, placed by the library, misplaced and unplaced', async () => {
  const a = prepare();
  if (!a.KERNEL_612_64K) throw new Error('prepare.sh printed no KERNEL_612_64K');
  const base = buildInitrd(a);
  const stage = path.dirname(base);
  try {
    const args = outerHostArgs({
      kernel: a.KERNEL_612_64K, initrd: hugePfnInitrd(base), append: 'console=ttyAMA0 panic=-1', smmu: true,
      devices: ['-object', BACKEND, '-device', 'ivshmem-plain,memdev=ivm'],
    });
    const { log, logPath, seconds: outerSeconds } = await bootOuterHost(a.CACHE, 'bench-emu-huge-pfn', args, OUTER_TIMEOUT_S);
    console.log(`outer boot ${outerSeconds.toFixed(1)} s, log ${logPath}`);
    const result = parseHugePfnLog(log);
    console.log(`\n${hugePfnTable(result)}\n`);
    const backend = BACKEND.replace(/id=[^,]+,?/, '').replace(/,/g, ' ');
    saveBenchEmuResults(REPO, { hugePfn: { date: new Date().toISOString(), outerSeconds, backend, result } });
    expect(result.kernel, 'the 6.12 kernel booted').toMatch(/^6\.12\./);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
});
