/**
 * CPU pinning of the bench's main thread (where the library side makes its calls). On this kind of machine a
 * KVM slot change waits for an SRCU grace period whose cost differs several-fold between CPUs, so the two
 * sides of a slot case run on the same CPU, or the ratio measures the scheduler's choice.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';

const require = createRequire(import.meta.url);
const CPU_SET_BYTES = 128; // glibc's cpu_set_t: 1024 CPUs

type SetAffinity = (pid: number, size: number, mask: Buffer) => number;
let setAffinity: SetAffinity | undefined;

function bind(): SetAffinity {
  if (!setAffinity) {
    const koffi = require('koffi') as typeof Koffi;
    const libc = koffi.load('libc.so.6');
    setAffinity = libc.func('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)');
  }
  return setAffinity;
}

/** Pins the calling thread to `cpu`, or lets it run on every CPU again when `cpu` is undefined. */
export function pinThread(cpu: number | undefined): void {
  const mask = Buffer.alloc(CPU_SET_BYTES, cpu === undefined ? 0xff : 0);
  if (cpu !== undefined) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= CPU_SET_BYTES * 8) throw new RangeError(`bad CPU ${cpu}`);
    mask[cpu >> 3] = 1 << (cpu & 7);
  }
  if (bind()(0, CPU_SET_BYTES, mask) !== 0) throw new RangeError(`sched_setaffinity(${String(cpu)}) failed`);
}
