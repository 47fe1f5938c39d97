/**
 * VFIO_DEVICE_SET_IRQS (include/uapi/linux/vfio.h): struct vfio_irq_set and its flags. The data that
 * follows the 20-byte header depends on DATA_*: nothing, a u8 per vector (BOOL), or an s32 eventfd per
 * vector (-1 leaves a vector without a trigger).
 */
import { checkI32 } from './u64.js';
import { decodeStruct, defineStruct, encodeStruct, need } from './layout.js';

const u32 = (offset: number) => ({ offset, type: 'u32' }) as const;

/** struct vfio_irq_set header; the per-vector `data[]` (flexible array) follows at `size`. */
export const VFIO_IRQ_SET_LAYOUT = defineStruct({
  name: 'vfio_irq_set', size: 20, headers: 'common', flexible: 'data',
  fields: { argsz: u32(0), flags: u32(4), index: u32(8), start: u32(12), count: u32(16) },
});

export const VFIO_IRQ_SET_SIZEOF = VFIO_IRQ_SET_LAYOUT.size;

export const VFIO_IRQ_SET = {
  DATA_NONE: 1 << 0,
  DATA_BOOL: 1 << 1,
  DATA_EVENTFD: 1 << 2,
  ACTION_MASK: 1 << 3,
  ACTION_UNMASK: 1 << 4,
  ACTION_TRIGGER: 1 << 5,
} as const;

export interface VfioIrqSet { flags: number; index: number; start: number; count: number }

/** Eventfd triggers for vectors [start, start + fds.length): DATA_EVENTFD | ACTION_TRIGGER. */
export function encodeIrqSetEventfds(index: number, start: number, fds: readonly number[]): Buffer {
  const flags = VFIO_IRQ_SET.DATA_EVENTFD | VFIO_IRQ_SET.ACTION_TRIGGER;
  const b = irqSetHeader({ flags, index, start, count: fds.length }, fds.length * 4);
  fds.forEach((fd, i) => b.writeInt32LE(checkI32('eventfd', fd), VFIO_IRQ_SET_SIZEOF + i * 4));
  return b;
}

/** DATA_NONE | ACTION_TRIGGER with count 0: disables the whole interrupt index (MSI-X off). */
export function encodeIrqSetDisable(index: number): Buffer {
  return irqSetHeader({ flags: VFIO_IRQ_SET.DATA_NONE | VFIO_IRQ_SET.ACTION_TRIGGER, index, start: 0, count: 0 }, 0);
}

export function decodeIrqSet(b: Buffer): VfioIrqSet & { argsz: number; eventfds: number[] } {
  const head = decodeStruct(VFIO_IRQ_SET_LAYOUT, b);
  const hasFds = (head.flags & VFIO_IRQ_SET.DATA_EVENTFD) !== 0;
  if (hasFds) need(b, VFIO_IRQ_SET_SIZEOF + head.count * 4, 'vfio_irq_set eventfds');
  const eventfds = hasFds ? Array.from({ length: head.count }, (_, i) => b.readInt32LE(VFIO_IRQ_SET_SIZEOF + i * 4)) : [];
  return { ...head, eventfds };
}

function irqSetHeader(s: VfioIrqSet, dataBytes: number): Buffer {
  const argsz = VFIO_IRQ_SET_SIZEOF + dataBytes;
  return encodeStruct(VFIO_IRQ_SET_LAYOUT, { argsz, flags: s.flags, index: s.index, start: s.start, count: s.count }, argsz);
}
