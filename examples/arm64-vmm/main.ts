#!/usr/bin/env node
/**
 * Command line of the example VMM:
 *   node main.js --kernel Image [--initrd initrd.cpio] [--mem 256] [--append 'console=ttyAMA0 quiet']
 * The guest's console goes to stdout; the last line is `VMM-REPORT {json}`.
 */
import { readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { IommuRequest } from 'vfio-bars';
import { runVmm } from './vmm.js';

const { values } = parseArgs({
  options: {
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    mem: { type: 'string', default: '256' },
    append: { type: 'string', default: 'console=ttyAMA0 quiet panic=-1' },
    pci: { type: 'boolean', default: false },
    vfio: { type: 'string' },
    iommu: { type: 'string', default: 'auto' },
    'ram-at-physical': { type: 'boolean', default: false },
  },
});
if (!values.kernel) {
  process.stderr.write('usage: main.js --kernel Image [--initrd cpio] [--mem MiB] [--append cmdline] [--pci] [--vfio BDF]'
    + ' [--iommu auto|type1|noiommu|iommufd] [--ram-at-physical]\n');
  process.exit(2);
}
const mib = Number(values.mem);
if (!Number.isInteger(mib) || mib < 64 || mib > 4096) throw new RangeError(`--mem ${values.mem}: give MiB between 64 and 4096`);

function iommuRequest(value: string): IommuRequest {
  const requests: readonly string[] = ['auto', 'type1', 'noiommu', 'iommufd'];
  if (!requests.includes(value)) throw new RangeError(`--iommu ${value}: give auto, type1, noiommu or iommufd`);
  return value as IommuRequest;
}

/** Line-buffered console: one write per line keeps the host's log readable and cheap. */
let line: number[] = [];
function flush(): void {
  if (line.length > 0) writeSync(1, Buffer.from(line));
  line = [];
}
function output(byte: number): void {
  if (byte === 0x0d) return;
  line.push(byte);
  if (byte === 0x0a || line.length >= 4096) flush();
}

const report = runVmm({
  kernel: readFileSync(values.kernel),
  ...(values.initrd ? { initrd: readFileSync(values.initrd) } : {}),
  ramSize: BigInt(mib) << 20n,
  bootargs: values.append,
  output,
  pci: values.pci,
  ...(values.vfio ? { vfio: values.vfio } : {}),
  iommu: iommuRequest(values.iommu),
  ramAtPhysical: values['ram-at-physical'],
});
flush();
writeSync(1, `VMM-REPORT ${JSON.stringify(report)}\n`);
