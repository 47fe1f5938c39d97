// Runs inside the emulated aarch64 host (node arm64): reads the trace of one nested QEMU run and prints
// one JSON line: MMIO exits, console exits and trapped BAR accesses between the guest's console markers
// BENCH-WINDOW-BEGIN and BENCH-WINDOW-END (the console text is rebuilt from pl011_write to UARTDR), and
// the same counts over the whole run.
// Usage: node count-trace.js NAME TRACE_FILE
import { readFileSync } from 'node:fs';

const KVM_EXIT_MMIO = 6;
const [name, file] = process.argv.slice(2);
const zero = () => ({ mmioExits: 0, consoleExits: 0, trappedReads: 0, trappedWrites: 0, otherExits: 0 });
const whole = zero();
const window = zero();
let console = '';
let state = 'before';

function count(field) {
  whole[field]++;
  if (state === 'inside') window[field]++;
}

for (const line of readFileSync(file, 'latin1').split('\n')) {
  const exit = /kvm_run_exit .*reason (\d+)/.exec(line);
  if (exit) {
    count(Number(exit[1]) === KVM_EXIT_MMIO ? 'mmioExits' : 'otherExits');
    continue;
  }
  // A BAR access QEMU serves itself: through the BAR's mmap when KVM has no slot for it (ram_device) or by
  // pread/pwrite on the region (vfio_region).
  if (/memory_region_ram_device_read|vfio_region_read/.test(line)) count('trappedReads');
  else if (/memory_region_ram_device_write|vfio_region_write/.test(line)) count('trappedWrites');
  else if (/pl011_(read|write)/.test(line)) {
    count('consoleExits');
    const tx = /pl011_write addr 0x0+ value 0x([0-9a-f]+)/.exec(line);
    if (tx && parseInt(tx[1], 16) !== 0x0d) {
      console = (console + String.fromCharCode(parseInt(tx[1], 16) & 0xff)).slice(-64);
      if (state === 'before' && console.endsWith('BENCH-WINDOW-BEGIN\n')) state = 'inside';
      else if (state === 'inside' && console.endsWith('BENCH-WINDOW-END\n')) state = 'after';
    }
  }
}
const trapped = (c) => ({ ...c, trappedAccesses: c.trappedReads + c.trappedWrites });
process.stdout.write(`${JSON.stringify({ name, windowSeen: state === 'after', window: trapped(window), whole: trapped(whole) })}\n`);
