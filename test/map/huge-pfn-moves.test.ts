/**
 * Each resource keeps the huge-PFN placement its mmap used (DirectResource.hugePfn) and moves check the
 * GPA against it instead of recomputing it: the check must stay exact across any number of moves.
 */
import { expect, it } from 'vitest';
import { BarMapper } from '../../src/map/index.js';
import { hugePfnPlacement } from '../../src/map/huge-pfn.js';
import { KvmVm } from '../../src/kvm/index.js';
import { VfioDevice } from '../../src/vfio/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import { e1000eBigBar0, qemuE1000e } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs } from '../vfio/fixtures.js';

const BDF = qemuE1000e.bdf;
const ROOTS = fakeSysfs(BDF, '3');
const big = e1000eBigBar0;
const ALIGNED = [0x4000_0000n, 0x5000_0000n];
const MISALIGNED = [0x4010_0000n, 0x6030_0000n];

it('a mismatch warning for every move to a GPA off the 2 MiB congruence, none for the aligned ones', () => {
  const kernel = new FakeKernel({ device: big, devRoot: ROOTS.devRoot, group: '3' });
  using device = VfioDevice.open(BDF, { ...ROOTS, syscalls: kernel, iommu: 'type1' });
  using vm = KvmVm.create({ syscalls: kernel, kvmPath: `${ROOTS.devRoot}/kvm` });
  using mapper = new BarMapper(device, vm);
  const plan = planBarMappings(big, { pageSize: 0x1000, msix: 'hole', barAddresses: { 0: ALIGNED[0]!, 1: 0x1010_0000n, 3: 0x1020_0000n } });
  const [bar0] = mapper.map(plan);
  for (const region of bar0!.regions) {
    // What the resource keeps is what hugePfnPlacement says for its file range.
    const expected = hugePfnPlacement(region.mapping.size, plan.bars[0]!.regionOffset + region.mapping.fileOffset, 0x1000n);
    expect(expected?.align).toBe(0x20_0000n);
  }
  const mismatches = (): number => mapper.warnings.filter((w) => w.code === 'HUGE_PFN_GPA_MISMATCH').length;
  for (let round = 0; round < 3; round++) {
    for (const gpa of MISALIGNED) {
      const before = mismatches();
      mapper.move(0, gpa);
      expect(mismatches() - before).toBe(2);
    }
    for (const gpa of ALIGNED) {
      const before = mismatches();
      mapper.move(0, gpa);
      expect(mismatches() - before).toBe(0);
    }
  }
});
