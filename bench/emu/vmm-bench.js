// Runs inside the emulated aarch64 host (node arm64): the example VMM (examples/arm64-vmm, built) on the
// bench's nested guest, counting what it serves between the guest's console markers BENCH-WINDOW-BEGIN and
// BENCH-WINDOW-END. The example itself is unchanged: the counts come from wrapping its MMIO bus (every MMIO
// exit goes through MmioBus.read/write), its pl011 (console exits) and its passthrough device (trapped BAR
// accesses, by the device's own trappedAccesses counter). Prints the guest's console, the example's
// VMM-REPORT, and one `BENCH-RESULT {json}` line shaped like count-trace.js's.
// Usage: node vmm-bench.js NAME --kernel Image --initrd cpio --append CMDLINE --vfio BDF
import { readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MmioBus } from '../../examples/arm64-vmm/mmio-bus.js';
import { Passthrough } from '../../examples/arm64-vmm/passthrough.js';
import { Pl011 } from '../../examples/arm64-vmm/pl011.js';
import { runVmm } from '../../examples/arm64-vmm/vmm.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { kernel: { type: 'string' }, initrd: { type: 'string' }, append: { type: 'string' }, vfio: { type: 'string' } },
});
const name = positionals[0] ?? 'example-vmm';
const zero = () => ({ mmioExits: 0, consoleExits: 0, trappedReads: 0, trappedWrites: 0 });
const whole = zero();
const window = zero();
let state = 'before';
function count(field) {
  whole[field]++;
  if (state === 'inside') window[field]++;
}

/** Replaces proto[method] by one that calls the original and then counts (after(self, before)). */
function wrap(proto, method, after, before = () => undefined) {
  const original = proto[method];
  proto[method] = function (...args) {
    const mark = before(this);
    const result = original.apply(this, args);
    after(this, mark);
    return result;
  };
}
wrap(MmioBus.prototype, 'read', () => count('mmioExits'));
wrap(MmioBus.prototype, 'write', () => count('mmioExits'));
wrap(Pl011.prototype, 'read', () => count('consoleExits'));
wrap(Pl011.prototype, 'write', () => count('consoleExits'));
for (const [method, field] of [['read', 'trappedReads'], ['write', 'trappedWrites']]) {
  const after = (self, before) => {
    if (self.trappedAccesses !== before) count(field);
  };
  wrap(Passthrough.prototype, method, after, (self) => self.trappedAccesses);
}

let line = [];
let text = '';
function output(byte) {
  if (byte === 0x0d) return;
  line.push(byte);
  text = (text + String.fromCharCode(byte)).slice(-64);
  if (state === 'before' && text.endsWith('BENCH-WINDOW-BEGIN\n')) state = 'inside';
  else if (state === 'inside' && text.endsWith('BENCH-WINDOW-END\n')) state = 'after';
  if (byte === 0x0a || line.length >= 4096) {
    writeSync(1, Buffer.from(line));
    line = [];
  }
}

const report = runVmm({
  kernel: readFileSync(values.kernel),
  initrd: readFileSync(values.initrd),
  ramSize: 256n << 20n,
  bootargs: values.append,
  output,
  pci: true,
  vfio: values.vfio,
});
if (line.length > 0) writeSync(1, Buffer.from(line));
writeSync(1, `VMM-REPORT ${JSON.stringify(report)}\n`);
const trapped = (c) => ({ ...c, trappedAccesses: c.trappedReads + c.trappedWrites });
writeSync(1, `BENCH-RESULT ${JSON.stringify({ name, windowSeen: state === 'after', window: trapped(window), whole: trapped(whole) })}\n`);
