/**
 * KVM interrupt ABI (include/uapi/linux/kvm.h): in-kernel irqchip, GSI routing, irqfd and direct MSI
 * injection. Every encoder range-checks before writing; layouts are the same on x86-64 and aarch64.
 */
import { io, iow } from './ioctl.js';
import { checkU32 } from './u64.js';
import { decodeStruct, defineStruct, encodeStruct, need, writeStruct } from './layout.js';

const KVMIO = 0xae;

const u32 = (offset: number) => ({ offset, type: 'u32' }) as const;

/** struct kvm_irq_routing header: u32 nr, u32 flags, then the entries. */
export const KVM_IRQ_ROUTING = defineStruct({
  name: 'kvm_irq_routing', size: 8, headers: 'common', flexible: 'entries', fields: { nr: u32(0), flags: u32(4) },
});
/** struct kvm_irq_routing_entry: gsi, type, flags, pad, then a 32-byte union `u` at 16. */
export const KVM_IRQ_ROUTING_ENTRY = defineStruct({
  name: 'kvm_irq_routing_entry', size: 48, headers: 'common',
  fields: { gsi: u32(0), type: u32(4), flags: u32(8), u: { offset: 16, type: 'u32', count: 4 } },
});
/** The MSI member of the routing entry's union. */
export const KVM_IRQ_ROUTING_MSI = defineStruct({
  name: 'kvm_irq_routing_msi', size: 16, headers: 'common',
  fields: { address_lo: u32(0), address_hi: u32(4), data: u32(8), devid: u32(12) },
});
/** The irqchip-pin member of the routing entry's union. */
export const KVM_IRQ_ROUTING_IRQCHIP = defineStruct({
  name: 'kvm_irq_routing_irqchip', size: 8, headers: 'common', fields: { irqchip: u32(0), pin: u32(4) },
});
export const KVM_IRQFD = defineStruct({
  name: 'kvm_irqfd', size: 32, headers: 'common', fields: { fd: u32(0), gsi: u32(4), flags: u32(8), resamplefd: u32(12) },
});
export const KVM_MSI = defineStruct({
  name: 'kvm_msi', size: 32, headers: 'common',
  fields: { address_lo: u32(0), address_hi: u32(4), data: u32(8), flags: u32(12), devid: u32(16) },
});

export const KVM_IRQ_SIZEOF = {
  kvm_irq_routing: KVM_IRQ_ROUTING.size,
  kvm_irq_routing_entry: KVM_IRQ_ROUTING_ENTRY.size,
  kvm_irqfd: KVM_IRQFD.size,
  kvm_msi: KVM_MSI.size,
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
  const b = encodeStruct(KVM_IRQ_ROUTING, { nr: checkU32('nr', entries.length) }, header + entries.length * size);
  entries.forEach((e, i) => writeRoutingEntry(b, header + i * size, e));
  return b;
}

function writeRoutingEntry(b: Buffer, at: number, e: KvmRoutingEntry): void {
  const union = at + KVM_IRQ_ROUTING_ENTRY.fields.u.offset;
  if (e.type === 'msi') {
    const flags = e.devid === undefined ? 0 : KVM_MSI_VALID_DEVID;
    writeStruct(b, KVM_IRQ_ROUTING_ENTRY, { gsi: e.gsi, type: KVM_IRQ_ROUTING_TYPE.MSI, flags }, at);
    const { addressLo, addressHi, data } = e;
    writeStruct(b, KVM_IRQ_ROUTING_MSI, { addressLo, addressHi, data, devid: e.devid ?? 0 }, union);
  } else {
    writeStruct(b, KVM_IRQ_ROUTING_ENTRY, { gsi: e.gsi, type: KVM_IRQ_ROUTING_TYPE.IRQCHIP }, at);
    writeStruct(b, KVM_IRQ_ROUTING_IRQCHIP, { irqchip: e.irqchip, pin: e.pin }, union);
  }
}

/** A decoded routing entry: the union `u` as its first four u32 words, whatever the type. */
export interface DecodedRoutingEntry { gsi: number; type: number; flags: number; u: number[] }

/** Decodes a routing table (used by the fake kernel to answer like KVM). Unknown types keep their number. */
export function decodeIrqRouting(b: Buffer): { nr: number; flags: number; entries: DecodedRoutingEntry[] } {
  const { nr, flags } = decodeStruct(KVM_IRQ_ROUTING, b);
  const { kvm_irq_routing: header, kvm_irq_routing_entry: size } = KVM_IRQ_SIZEOF;
  need(b, header + nr * size, 'kvm_irq_routing entries');
  const entries = Array.from({ length: nr }, (_, i) => decodeRoutingEntry(b, header + i * size));
  return { nr, flags, entries };
}

function decodeRoutingEntry(b: Buffer, at: number): DecodedRoutingEntry {
  const { gsi, type, flags, u } = decodeStruct(KVM_IRQ_ROUTING_ENTRY, b, at);
  return { gsi, type, flags, u: [...u] };
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
  return encodeStruct(KVM_IRQFD, { fd: i.fd, gsi: i.gsi, flags: i.flags, resamplefd: i.resamplefd ?? 0 });
}
export function decodeIrqfd(b: Buffer): Required<KvmIrqfd> {
  return decodeStruct(KVM_IRQFD, b);
}

export interface KvmMsi { addressLo: number; addressHi: number; data: number; devid?: number }
/** struct kvm_msi for KVM_SIGNAL_MSI (inject one message now, without a route). */
export function encodeMsi(m: KvmMsi): Buffer {
  const flags = m.devid === undefined ? 0 : KVM_MSI_VALID_DEVID;
  return encodeStruct(KVM_MSI, { addressLo: m.addressLo, addressHi: m.addressHi, data: m.data, flags, devid: m.devid ?? 0 });
}
export function decodeMsi(b: Buffer): KvmMsi & { flags: number } {
  return decodeStruct(KVM_MSI, b);
}
