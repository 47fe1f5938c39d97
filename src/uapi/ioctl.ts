/**
 * The generic Linux `_IOC` request encoding (include/uapi/asm-generic/ioctl.h), shared by x86-64 and
 * aarch64. Kept parametric so an architecture with different field widths (powerpc, mips) could be added.
 */
export interface IocLayout {
  readonly nrBits: number;
  readonly typeBits: number;
  readonly sizeBits: number;
  readonly dirBits: number;
  readonly none: number;
  readonly write: number;
  readonly read: number;
}

/** x86-64 and aarch64 both use the asm-generic layout. */
export const GENERIC_IOC: IocLayout = {
  nrBits: 8,
  typeBits: 8,
  sizeBits: 14,
  dirBits: 2,
  none: 0,
  write: 1,
  read: 2,
};

export type IocDirection = 'none' | 'read' | 'write' | 'readwrite';

/** Encodes an ioctl request number; throws RangeError when a field does not fit its bits. */
export function ioc(dir: IocDirection, type: number, nr: number, size: number, layout: IocLayout = GENERIC_IOC): number {
  const dirValue = { none: layout.none, read: layout.read, write: layout.write, readwrite: layout.read | layout.write }[dir];
  checkField('type', type, layout.typeBits);
  checkField('nr', nr, layout.nrBits);
  checkField('size', size, layout.sizeBits);
  const nrShift = 0;
  const typeShift = nrShift + layout.nrBits;
  const sizeShift = typeShift + layout.typeBits;
  const dirShift = sizeShift + layout.sizeBits;
  // Unsigned arithmetic: the read bit lands in bit 31, which a plain `<<` would make negative.
  return (dirValue * 2 ** dirShift) + (size * 2 ** sizeShift) + (type * 2 ** typeShift) + (nr * 2 ** nrShift);
}

export const io = (type: number, nr: number): number => ioc('none', type, nr, 0);
export const ior = (type: number, nr: number, size: number): number => ioc('read', type, nr, size);
export const iow = (type: number, nr: number, size: number): number => ioc('write', type, nr, size);
export const iowr = (type: number, nr: number, size: number): number => ioc('readwrite', type, nr, size);

function checkField(name: string, value: number, bits: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new RangeError(`ioctl ${name} ${value} does not fit in ${bits} bits`);
  }
}
