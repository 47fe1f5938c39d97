/**
 * VFIO_DEVICE_SET_IRQS (include/uapi/linux/vfio.h): struct vfio_irq_set and its flags. The data that
 * follows the 20-byte header depends on DATA_*: nothing, a u8 per vector (BOOL), or an s32 eventfd per
 * vector (-1 leaves a vector without a trigger).
 */
import { checkI32, checkU32 } from './u64.js';
import { need } from './vfio.js';

export const VFIO_IRQ_SET_SIZEOF = 20;

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
  const b = irqSetHeader({ flags: VFIO_IRQ_SET.DATA_EVENTFD | VFIO_IRQ_SET.ACTION_TRIGGER, index, start, count: fds.length }, fds.length * 4);
  fds.forEach((fd, i) => b.writeInt32LE(checkI32('eventfd', fd), VFIO_IRQ_SET_SIZEOF + i * 4));
  return b;
}

/** DATA_NONE | ACTION_TRIGGER with count 0: disables the whole interrupt index (MSI-X off). */
export function encodeIrqSetDisable(index: number): Buffer {
  return irqSetHeader({ flags: VFIO_IRQ_SET.DATA_NONE | VFIO_IRQ_SET.ACTION_TRIGGER, index, start: 0, count: 0 }, 0);
}

export function decodeIrqSet(b: Buffer): VfioIrqSet & { argsz: number; eventfds: number[] } {
  need(b, VFIO_IRQ_SET_SIZEOF, 'vfio_irq_set');
  const head = { argsz: b.readUInt32LE(0), flags: b.readUInt32LE(4), index: b.readUInt32LE(8), start: b.readUInt32LE(12), count: b.readUInt32LE(16) };
  const hasFds = (head.flags & VFIO_IRQ_SET.DATA_EVENTFD) !== 0;
  if (hasFds) need(b, VFIO_IRQ_SET_SIZEOF + head.count * 4, 'vfio_irq_set eventfds');
  const eventfds = hasFds ? Array.from({ length: head.count }, (_, i) => b.readInt32LE(VFIO_IRQ_SET_SIZEOF + i * 4)) : [];
  return { ...head, eventfds };
}

function irqSetHeader(s: VfioIrqSet, dataBytes: number): Buffer {
  const b = Buffer.alloc(VFIO_IRQ_SET_SIZEOF + dataBytes);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(checkU32('flags', s.flags), 4);
  b.writeUInt32LE(checkU32('index', s.index), 8);
  b.writeUInt32LE(checkU32('start', s.start), 12);
  b.writeUInt32LE(checkU32('count', s.count), 16);
  return b;
}
