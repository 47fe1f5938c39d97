/**
 * Decoding PCI config space (read through the VFIO config region): header, standard capability list,
 * BAR registers and the MSI-X capability. Pure functions over a Buffer; the walk is bounded and
 * loop-safe because config space is device-controlled data.
 */
import type { BarRegister, MsixDescription, PciConfigSummary } from './description.js';
import { VFIO_PCI_REGION } from '../uapi/vfio.js';
import { hex } from '../errors.js';
import { VfioError } from './errors.js';

const PCI = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  STATUS: 0x06,
  CLASS_REVISION: 0x08,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  CAPABILITY_LIST: 0x34,
  STATUS_CAP_LIST: 0x10,
  CAP_ID_MSIX: 0x11,
} as const;

/** Standard capabilities live in the first 256 bytes, after the 64-byte header. */
const FIRST_CAP = 0x40;
const STANDARD_END = 0x100;
const MAX_CAPS = 48;

export function decodeConfigHeader(config: Buffer): PciConfigSummary {
  return {
    vendorId: config.readUInt16LE(PCI.VENDOR_ID),
    deviceId: config.readUInt16LE(PCI.DEVICE_ID),
    classCode: config.readUInt32LE(PCI.CLASS_REVISION) >>> 8,
    headerType: config.readUInt8(PCI.HEADER_TYPE) & 0x7f,
    capabilities: walkCapabilities(config),
  };
}

function walkCapabilities(config: Buffer): { id: number; offset: number }[] {
  if ((config.readUInt16LE(PCI.STATUS) & PCI.STATUS_CAP_LIST) === 0) return [];
  const caps: { id: number; offset: number }[] = [];
  const seen = new Set<number>();
  let offset = config.readUInt8(PCI.CAPABILITY_LIST) & 0xfc;
  while (offset >= FIRST_CAP && offset + 2 <= Math.min(STANDARD_END, config.length) && !seen.has(offset) && caps.length < MAX_CAPS) {
    seen.add(offset);
    caps.push({ id: config.readUInt8(offset), offset });
    offset = config.readUInt8(offset + 1) & 0xfc;
  }
  return caps;
}

/** BAR registers 0-5 (type-0 header) or 0-1 (bridges); the rest are reported unused. */
export function decodeBars(config: Buffer, headerType: number): BarRegister[] {
  const count = headerType === 0 ? 6 : headerType === 1 ? 2 : 0;
  const bars: BarRegister[] = [];
  for (let index = 0; index < 6; index++) {
    const previous = bars[index - 1];
    if (index >= count) bars.push({ index, kind: 'unused', is64Bit: false, prefetchable: false, address: 0n });
    else if (previous?.kind === 'memory' && previous.is64Bit) bars.push({
      index,
      kind: 'upper-half',
      is64Bit: true,
      prefetchable: previous.prefetchable,
      address: 0n,
    });
    else bars.push(decodeBar(config, index));
  }
  return bars;
}

function decodeBar(config: Buffer, index: number): BarRegister {
  const low = config.readUInt32LE(PCI.BAR0 + index * 4);
  if ((low & 1) === 1) return { index, kind: 'io', is64Bit: false, prefetchable: false, address: BigInt(low) & 0xffff_fffcn };
  const is64Bit = ((low >>> 1) & 3) === 2 && index < 5;
  const prefetchable = (low & 8) !== 0;
  const high = is64Bit ? BigInt(config.readUInt32LE(PCI.BAR0 + (index + 1) * 4)) << 32n : 0n;
  const address = high | (BigInt(low) & 0xffff_fff0n);
  const kind = low === 0 && !is64Bit ? 'unused' : 'memory';
  return { index, kind, is64Bit, prefetchable, address };
}

/**
 * BIR 6 and 7 are reserved: such a device has no MSI-X table a VMM could find, and a description claiming
 * one could not be planned (descriptionFromJSON refuses it too), so describe() fails with the same verdict.
 */
function checkBir(what: string, bir: number, capOffset: number): void {
  if (bir > 5) {
    const message = `MSI-X capability at config ${hex(capOffset)}: ${what} BIR ${bir} is reserved (not a BAR 0-5)`;
    throw new VfioError(message, { code: 'MSIX_BAD_BIR', region: VFIO_PCI_REGION.CONFIG });
  }
}

/**
 * The MSI-X capability, if the device has one.
 * @throws VfioError `MSIX_BAD_BIR` when the table or PBA BIR is 6 or 7 (reserved).
 */
export function decodeMsix(config: Buffer, capabilities: readonly { id: number; offset: number }[]): MsixDescription | undefined {
  const cap = capabilities.find((c) => c.id === PCI.CAP_ID_MSIX);
  if (!cap || cap.offset + 12 > config.length) return undefined;
  const control = config.readUInt16LE(cap.offset + 2);
  const tableReg = config.readUInt32LE(cap.offset + 4);
  const pbaReg = config.readUInt32LE(cap.offset + 8);
  const vectors = (control & 0x7ff) + 1;
  checkBir('table', tableReg & 7, cap.offset);
  checkBir('PBA', pbaReg & 7, cap.offset);
  return {
    capOffset: cap.offset,
    vectors,
    table: { bir: tableReg & 7, offset: BigInt(tableReg) & 0xffff_fff8n, size: BigInt(vectors * 16) },
    pba: { bir: pbaReg & 7, offset: BigInt(pbaReg) & 0xffff_fff8n, size: BigInt(Math.ceil(vectors / 64) * 8) },
  };
}
