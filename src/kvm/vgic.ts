/* Arm64Gic: the arm64 in-kernel interrupt controller (documented on the class). */
import { ARM64_GIC_SIZE, KVM_DEV_ARM_VGIC, KVM_DEV_TYPE_ARM, encodeArm64SpiLine, encodeIrqLevel } from '../uapi/index.js';
import { SystemError } from '../sys/system-error.js';
import { UndoStack } from '../vfio/cleanup.js';
import { hex } from '../errors.js';
import { KvmDevice } from './device.js';
import { KvmError } from './errors.js';
import type { KvmVm } from './vm.js';

/** Where the GIC's frames sit in guest physical memory (what the VMM's device tree announces). */
export interface Arm64GicLayout {
  /** Distributor base (64 KiB frame), 64 KiB aligned. */
  readonly distributor: bigint;
  /** Base of the redistributor region: 128 KiB per vCPU, 64 KiB aligned. */
  readonly redistributors: bigint;
  /** ITS base (128 KiB), 64 KiB aligned; omit for a VM without MSIs. */
  readonly its?: bigint;
}

const FRAME_ALIGN = 0x1_0000n;

/**
 * `Arm64Gic`: the in-kernel interrupt controller of an arm64 VM — a vGICv3 (distributor +
 * redistributors) and optionally an ITS for MSIs — placed at the guest physical addresses the VMM's
 * device tree announces, plus KVM_IRQ_LINE for the VMM's own level-triggered devices (a UART).
 *
 * @example
 * using gic = Arm64Gic.create(vm, { distributor: 0x0800_0000n, redistributors: 0x080a_0000n, its: 0x0808_0000n });
 */
export class Arm64Gic implements Disposable {
  /** The layout it was created with. */
  readonly layout: Arm64GicLayout;
  readonly #vm: KvmVm;
  readonly #gic: KvmDevice;
  readonly #its: KvmDevice | undefined;
  #closed = false;

  private constructor(vm: KvmVm, layout: Arm64GicLayout, gic: KvmDevice, its: KvmDevice | undefined) {
    this.#vm = vm;
    this.layout = layout;
    this.#gic = gic;
    this.#its = its;
  }

  /**
   * Creates the vGICv3 at `layout`, initialises it, then the ITS if asked. Call after every vCPU of the
   * VM exists (KVM sizes the redistributors by the vCPUs present) and before the first KVM_RUN.
   * @throws RangeError for a misaligned base; KvmError from KVM_CREATE_DEVICE / KVM_SET_DEVICE_ATTR
   *   (ENODEV: no GICv3 support in this host's KVM; EBUSY: a vCPU already ran). Nothing is left on failure.
   * @example
   * using gic = Arm64Gic.create(vm, { distributor: 0x800_0000n, redistributors: 0x80a_0000n, its: 0x808_0000n });
   * gic.setSpiLevel(1, true); // the UART's line, `<0 1 4>` in the device tree
   */
  static create(vm: KvmVm, layout: Arm64GicLayout): Arm64Gic {
    for (const [name, base] of Object.entries(layout) as [string, bigint | undefined][]) {
      if (base !== undefined && (base < 0n || base % FRAME_ALIGN !== 0n)) {
        throw new RangeError(`GIC ${name} base ${hex(base)} is not 64 KiB aligned`);
      }
    }
    const undo = new UndoStack();
    try {
      const gic = KvmDevice.create(vm, KVM_DEV_TYPE_ARM.VGIC_V3, 'vgic-v3');
      undo.push(() => gic.close());
      gic.setAttr(KVM_DEV_ARM_VGIC.GRP_ADDR, BigInt(KVM_DEV_ARM_VGIC.V3_ADDR_TYPE_DIST), layout.distributor);
      gic.setAttr(KVM_DEV_ARM_VGIC.GRP_ADDR, BigInt(KVM_DEV_ARM_VGIC.V3_ADDR_TYPE_REDIST), layout.redistributors);
      gic.setAttr(KVM_DEV_ARM_VGIC.GRP_CTRL, BigInt(KVM_DEV_ARM_VGIC.CTRL_INIT));
      let its: KvmDevice | undefined;
      if (layout.its !== undefined) {
        const created = KvmDevice.create(vm, KVM_DEV_TYPE_ARM.VGIC_ITS, 'vgic-its');
        undo.push(() => created.close());
        created.setAttr(KVM_DEV_ARM_VGIC.GRP_ADDR, BigInt(KVM_DEV_ARM_VGIC.ITS_ADDR_TYPE), layout.its);
        created.setAttr(KVM_DEV_ARM_VGIC.GRP_CTRL, BigInt(KVM_DEV_ARM_VGIC.CTRL_INIT));
        its = created;
      }
      undo.release();
      return new Arm64Gic(vm, layout, gic, its);
    } catch (error) {
      undo.unwind();
      throw error;
    }
  }

  /** Guest-physical size of the redistributor region for `vcpus` vCPUs. */
  static redistributorSize(vcpus: number): bigint {
    if (!Number.isInteger(vcpus) || vcpus < 1) throw new RangeError(`vCPU count ${vcpus} is not a positive integer`);
    return ARM64_GIC_SIZE.redistributorPerVcpu * BigInt(vcpus);
  }

  /** The ITS device fd (for MSI routing with KVM_MSI_VALID_DEVID), or undefined without an ITS. */
  get itsFd(): number | undefined {
    return this.#its?.fd;
  }

  /**
   * Drives shared peripheral interrupt `spi` (numbered as in the device tree's `<0 spi flags>`) to
   * `level`, through KVM_IRQ_LINE. A level-triggered device calls this on every change of its output.
   * @throws RangeError for an SPI out of range; KvmError from KVM_IRQ_LINE.
   */
  setSpiLevel(spi: number, level: boolean): void {
    if (this.#closed) throw new KvmError('GIC is closed', { code: 'CLOSED' });
    const arg = encodeIrqLevel(encodeArm64SpiLine(spi), level);
    try {
      this.#vm.syscalls.ioctl(this.#vm.fd, 'KVM_IRQ_LINE', arg);
    } catch (error) {
      if (!(error instanceof SystemError)) throw error;
      throw new KvmError(
        `KVM_IRQ_LINE SPI ${spi} level ${level ? 1 : 0}: ${error.code}`,
        { code: error.code, errno: error.errno, ioctl: 'KVM_IRQ_LINE' },
        { cause: error },
      );
    }
  }

  /** Closes the device fds (the VM keeps the GIC until it is destroyed), all of them even when one fails. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const undo = new UndoStack();
    undo.push(() => this.#gic.close());
    if (this.#its) undo.push(() => this.#its?.close());
    const errors = undo.unwind();
    if (errors.length > 0) throw errors[0];
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}
