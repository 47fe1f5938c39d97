/**
 * MemfdMsixDevice plus a second BAR for the overlap tests on the real /dev/kvm: BAR0 is QEMU NVMe's
 * 16 KiB layout (MSI-X table 0x2000, PBA 0x3000) at file offset 0, config space at 0x10000 with memory
 * decode on, and BAR2 a plain 16 KiB 32-bit memory BAR at file offset 0x20000.
 */
import type { DeviceDescription } from '../../src/vfio/description.js';
import { MemfdMsixDevice } from './memfd-msix-device.js';

const CONFIG_OFFSET = 0x1_0000n;
const BAR2_OFFSET = 0x2_0000n;
const BAR2_SIZE = 0x4000n;

export class MemfdTwoBarDevice extends MemfdMsixDevice {
  constructor() {
    super();
    this.syscalls.ftruncate(this.fd, BAR2_OFFSET + BAR2_SIZE);
    const command = Buffer.alloc(2);
    command.writeUInt16LE(0x0006); // MEM | MASTER: the guest view starts with decode on, like the mapper
    this.syscalls.pwrite(this.fd, command, CONFIG_OFFSET + 4n);
  }

  /** Writes a little-endian u32 into BAR2 (through the file). */
  writeBar2U32(offset: bigint, value: number): void {
    this.writeU32(BAR2_OFFSET + offset, value);
  }

  override describe(): DeviceDescription {
    const base = super.describe();
    return {
      ...base,
      regions: [
        ...base.regions.filter((r) => r.index === 0),
        { index: 2, flags: 0x7, size: BAR2_SIZE, offset: BAR2_OFFSET, capabilities: [] },
        ...base.regions.filter((r) => r.index === 7),
      ],
      bars: base.bars.map((b) => (b.index === 2 ? { ...b, kind: 'memory' as const, is64Bit: false, address: 0n } : b)),
    };
  }
}
