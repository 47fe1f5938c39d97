// The same as plan-captured-device.ts in plain JavaScript, runnable as is on Node 20 (`node
// examples/plain-javascript.mjs`): no TypeScript, and no `using` declarations (a SyntaxError before Node 24).
// Anything the library hands out with an end of life (VfioDevice, KvmVm, BarMapper) is disposed in a
// `finally` with its [Symbol.dispose]() instead, in the reverse order of creation.
//
//   node examples/plain-javascript.mjs [description.json] [--device BDF]
import { readFileSync } from 'node:fs';
import { VfioBarsError, VfioDevice, descriptionFromJSON, hex, normalizeBdf, planBarMappings } from 'vfio-bars';

const args = process.argv.slice(2);
const deviceIndex = args.indexOf('--device');
const bdf = deviceIndex >= 0 ? args.splice(deviceIndex, 2)[1] : undefined;
const file = args[0] ?? new URL('../profiles/qemu-nvme.json', import.meta.url);

/** A captured description from a file, or a live one from a device bound to vfio-pci. */
function loadDescription() {
  if (bdf === undefined) return descriptionFromJSON(JSON.parse(readFileSync(file, 'utf8')));
  const device = VfioDevice.open(normalizeBdf(bdf));
  try {
    return device.describe();
  } finally {
    device[Symbol.dispose](); // what `using device = ...` does at the end of the block
  }
}

try {
  const description = loadDescription();
  const plan = planBarMappings(description, { pageSize: 0x1_0000n, barAddresses: new Map([[0, 0x80_0000_0000n]]) });
  for (const bar of plan.bars) {
    console.log(`BAR${bar.index}: device ${hex(bar.regionSize)} -> guest ${hex(bar.guestSize)} at ${hex(bar.guestAddress ?? 0n)}`);
    for (const m of bar.mappings) console.log(`  direct  ${hex(m.barOffset)}+${hex(m.size)} at gpa ${hex(m.gpa ?? 0n)}: ${m.reason}`);
    for (const t of bar.trapped) console.log(`  trapped ${hex(t.barOffset)}+${hex(t.size)}: ${t.reason}`);
  }
} catch (error) {
  // Every error the library throws on purpose is a VfioBarsError with a stable code.
  if (!(error instanceof VfioBarsError)) throw error;
  console.error(`${error.name} ${error.code}: ${error.message}`);
  process.exitCode = 1;
}
