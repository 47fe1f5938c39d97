/**
 * KVM interrupt ABI (include/uapi/linux/kvm.h): in-kernel irqchip, GSI routing, irqfd and direct MSI
 * injection. Every encoder range-checks before writing; layouts are the same on x86-64 and aarch64.
 */
import { io, iow } from './ioctl.js';
import { checkU32 } from './u64.js';
import { need } from './vfio.js';

const KVMIO = 0xae;

export const KVM_IRQ_SIZEOF = {
  /** struct kvm_irq_routing header: u32 nr, u32 flags, then the entries. */
  kvm_irq_routing: 8,
  /** struct kvm_irq_routing_entry: gsi, type, flags, pad, then a 32-byte union. */
  kvm_irq_routing_entry: 48,
  kvm_irqfd: 32,
  kvm_msi: 32,
} as const;

export const KVM_IRQ_IOCTL = {
  KVM_CREATE_IRQCHIP: io(KVMIO, 0x60),
  KVM_SET_GSI_ROUTING: iow(KVMIO, 0x6a, KVM_IRQ_SIZEOF.kvm_irq_routing),
  KVM_IRQFD: iow(KVMIO, 0x76, KVM_IRQ_SIZEOF.kvm_irqfd),
  KVM_SIGNAL_MSI: iow(KVMIO, 0xa5, KVM_IRQ_SIZEOF.kvm_msi),
} as const;

/** KVM_CHECK_EXTENSION ids for interrupts. IRQ_ROUTING answers the routing table's size limit on x86. */
export const KVM_IRQ_CAP = { IRQCHIP: 0, IRQ_ROUTING: 25, IRQFD: 32, SIGNAL_MSI: 77, MSI_DEVID: 131 } as const;

export const KVM_IRQ_ROUTING_TYPE = { IRQCHIP: 1, MSI: 2 } as const;
/** kvm_irq_routing_entry.flags / kvm_msi.flags: `devid` is valid (arm64 ITS needs it). */
export const KVM_MSI_VALID_DEVID = 1;
export const KVM_IRQFD_FLAGS = { DEASSIGN: 1, RESAMPLE: 2 } as const;

/** One routing entry: an MSI message, or an irqchip pin (which the VMM may own for its own devices). */
export type KvmRoutingEntry =
  /** An MSI route: KVM injects this message when the GSI fires. */
  | {
    /** The GSI the route serves. */ readonly gsi: number;
    /** An MSI route. */ readonly type: 'msi';
    /** Message Address, low dword. */ readonly addressLo: number;
    /** Message Upper Address. */ readonly addressHi: number;
    /** Message Data. */ readonly data: number;
    /** arm64 ITS: the device id (sets KVM_MSI_VALID_DEVID); omit on x86. */ readonly devid?: number;
  }
  /** An irqchip pin route (the VMM's own, e.g. x86 PIC/IOAPIC pins). */
  | {
    /** The GSI the route serves. */ readonly gsi: number;
    /** An irqchip route. */ readonly type: 'irqchip';
    /** KVM_IRQCHIP_* (x86: PIC master 0, PIC slave 1, IOAPIC 2). */ readonly irqchip: number;
    /** The pin on that irqchip. */ readonly pin: number;
  };

/** struct kvm_irq_routing with `entries.length` entries (the whole table KVM_SET_GSI_ROUTING replaces). */
export function encodeIrqRouting(entries: readonly KvmRoutingEntry[]): Buffer {
  const { kvm_irq_routing: header, kvm_irq_routing_entry: size } = KVM_IRQ_SIZEOF;
  const b = Buffer.alloc(header + entries.length * size);
  b.writeUInt32LE(checkU32('nr', entries.length), 0);
  entries.forEach((e, i) => writeRoutingEntry(b, header + i * size, e));
  return b;
}

function writeRoutingEntry(b: Buffer, at: number, e: KvmRoutingEntry): void {
  b.writeUInt32LE(checkU32('gsi', e.gsi), at);
  if (e.type === 'msi') {
    b.writeUInt32LE(KVM_IRQ_ROUTING_TYPE.MSI, at + 4);
    b.writeUInt32LE(e.devid === undefined ? 0 : KVM_MSI_VALID_DEVID, at + 8);
    b.writeUInt32LE(checkU32('address_lo', e.addressLo), at + 16);
    b.writeUInt32LE(checkU32('address_hi', e.addressHi), at + 20);
    b.writeUInt32LE(checkU32('data', e.data), at + 24);
    b.writeUInt32LE(checkU32('devid', e.devid ?? 0), at + 28);
  } else {
    b.writeUInt32LE(KVM_IRQ_ROUTING_TYPE.IRQCHIP, at + 4);
    b.writeUInt32LE(checkU32('irqchip', e.irqchip), at + 16);
    b.writeUInt32LE(checkU32('pin', e.pin), at + 20);
  }
}

/** Decodes a routing table (used by the fake kernel to answer like KVM). Unknown types keep their number. */
export function decodeIrqRouting(b: Buffer): { nr: number; flags: number; entries: { gsi: number; type: number; flags: number; u: number[] }[] } {
  need(b, KVM_IRQ_SIZEOF.kvm_irq_routing, 'kvm_irq_routing');
  const nr = b.readUInt32LE(0);
  const flags = b.readUInt32LE(4);
  need(b, KVM_IRQ_SIZEOF.kvm_irq_routing + nr * KVM_IRQ_SIZEOF.kvm_irq_routing_entry, 'kvm_irq_routing entries');
  const entries = Array.from({ length: nr }, (_, i) => {
    const at = KVM_IRQ_SIZEOF.kvm_irq_routing + i * KVM_IRQ_SIZEOF.kvm_irq_routing_entry;
    return { gsi: b.readUInt32LE(at), type: b.readUInt32LE(at + 4), flags: b.readUInt32LE(at + 8), u: [0, 1, 2, 3].map((k) => b.readUInt32LE(at + 16 + k * 4)) };
  });
  return { nr, flags, entries };
}

export interface KvmIrqfd {
  /** The eventfd KVM listens on. */
  fd: number;
  gsi: number;
  flags: number;
  /** Resample eventfd (level-triggered INTx only; 0 otherwise). */
  resamplefd?: number;
}
export function encodeIrqfd(i: KvmIrqfd): Buffer {
  const b = Buffer.alloc(KVM_IRQ_SIZEOF.kvm_irqfd);
  b.writeUInt32LE(checkU32('fd', i.fd), 0);
  b.writeUInt32LE(checkU32('gsi', i.gsi), 4);
  b.writeUInt32LE(checkU32('flags', i.flags), 8);
  b.writeUInt32LE(checkU32('resamplefd', i.resamplefd ?? 0), 12);
  return b;
}
export function decodeIrqfd(b: Buffer): Required<KvmIrqfd> {
  need(b, KVM_IRQ_SIZEOF.kvm_irqfd, 'kvm_irqfd');
  return { fd: b.readUInt32LE(0), gsi: b.readUInt32LE(4), flags: b.readUInt32LE(8), resamplefd: b.readUInt32LE(12) };
}

export interface KvmMsi { addressLo: number; addressHi: number; data: number; devid?: number }
/** struct kvm_msi for KVM_SIGNAL_MSI (inject one message now, without a route). */
export function encodeMsi(m: KvmMsi): Buffer {
  const b = Buffer.alloc(KVM_IRQ_SIZEOF.kvm_msi);
  b.writeUInt32LE(checkU32('address_lo', m.addressLo), 0);
  b.writeUInt32LE(checkU32('address_hi', m.addressHi), 4);
  b.writeUInt32LE(checkU32('data', m.data), 8);
  b.writeUInt32LE(m.devid === undefined ? 0 : KVM_MSI_VALID_DEVID, 12);
  b.writeUInt32LE(checkU32('devid', m.devid ?? 0), 16);
  return b;
}
export function decodeMsi(b: Buffer): KvmMsi & { flags: number } {
  need(b, KVM_IRQ_SIZEOF.kvm_msi, 'kvm_msi');
  return { addressLo: b.readUInt32LE(0), addressHi: b.readUInt32LE(4), data: b.readUInt32LE(8), flags: b.readUInt32LE(12), devid: b.readUInt32LE(16) };
}
