/**
 * Plan a captured device: read a DeviceDescription JSON (what `vfio-bars describe BDF --out FILE` writes; here
 * QEMU's NVMe with a 16 KiB BAR0, captured on a 64 KiB-page arm64 host) and plan its BAR mappings for a
 * 64 KiB-page host with the guest BAR at a chosen address. Pure: no device, no /dev/kvm, no root.
 *
 *   npx tsx examples/plan-captured-device.ts [description.json]    (or compile it with tsc)
 */
import { readFileSync } from 'node:fs';
import { descriptionFromJSON, hex, planBarMappings, planToJSON } from 'vfio-bars';

const file = process.argv[2] ?? new URL('../profiles/qemu-nvme.json', import.meta.url);
const description = descriptionFromJSON(JSON.parse(readFileSync(file, 'utf8')));

const plan = planBarMappings(description, {
  pageSize: 0x1_0000n, // the host's page size: 64 KiB on many arm64 servers
  barAddresses: new Map([[0, 0x80_0000_0000n]]), // where the guest's firmware or the VMM put BAR0
});

for (const bar of plan.bars) {
  console.log(`BAR${bar.index}: device ${hex(bar.regionSize)} -> guest ${hex(bar.guestSize)} at ${hex(bar.guestAddress ?? 0n)}`);
  for (const m of bar.mappings) console.log(`  direct  ${hex(m.barOffset)}+${hex(m.size)} at gpa ${hex(m.gpa ?? 0n)}: ${m.reason}`);
  for (const t of bar.trapped) console.log(`  trapped ${hex(t.barOffset)}+${hex(t.size)}: ${t.reason}`);
  if (bar.msix?.relocated) console.log(`  MSI-X table for the guest at ${hex(bar.msix.table?.offset ?? 0n)} (relocated)`);
}
// The plan is plain data: keep it as JSON with the VM's state, read it back with planFromJSON.
console.log(`plan JSON: ${JSON.stringify(planToJSON(plan)).length} bytes`);
