/* The guest's view of PCI config space (documented on VirtualConfigSpace). */
import { hex } from '../errors.js';
import type { PlannedBar } from '../plan/types.js';
import type { MsixDescription } from '../vfio/description.js';
import type { RegionAccess } from '../vfio/region-access.js';
import type { GuestBarHost } from './bar-host.js';
import { GuestError } from './errors.js';

const CONFIG_REGION = 7;
const PCI_COMMAND = 0x04;
const COMMAND_MEMORY = 0x2;
const BAR0 = 0x10;
const ROM_BAR = 0x30;
const EXT_CAP_START = 0x100;
const ALL_ONES = 0xffff_ffff;
const MSIX_ENABLE = 0x8000;
const MSIX_FUNCTION_MASK = 0x4000;
const MSIX_TABLE_SIZE = 0x07ff;

/** Extended capability ids hidden by default: Resizable BAR, SR-IOV, ARI. */
export const DEFAULT_HIDDEN_EXT_CAPS: readonly number[] = [0x15, 0x10, 0x0e];

/** What config space tells the rest of the guest view. */
export interface ConfigSpaceHooks {
  /** The guest wrote Message Control (enable, function mask). */
  msixControl?(enabled: boolean, functionMasked: boolean): void;
  /** COMMAND.MEM changed. */
  decode?(index: number, enabled: boolean): void;
  /** A BAR moved (the dispatcher must re-read placements). */
  moved?(index: number, guestAddress: bigint): void;
}

/** Options of the {@link VirtualConfigSpace} constructor. */
export interface VirtualConfigSpaceOptions {
  /** PCI address, for messages. */
  readonly bdf: string;
  /** Access to the device's regions (config space is region 7). */
  readonly region: RegionAccess;
  /** Where the BARs are placed (a BarMapper): BAR writes move them, COMMAND.MEM toggles their decode. */
  readonly host: GuestBarHost;
  /** The BAR indices of the plan (memory BARs the guest sees). */
  readonly bars: readonly number[];
  /** The device's MSI-X capability, to emulate its Table/PBA offsets and Message Control. */
  readonly msix?: MsixDescription;
  /** Extended capability ids to unlink. Default {@link DEFAULT_HIDDEN_EXT_CAPS}. */
  readonly hideExtendedCaps?: readonly number[];
  /** Called when MSI-X control, decode or a BAR placement changes. */
  readonly hooks?: ConfigSpaceHooks;
}

/** A dword whose `mask` bits the library answers; the other bits go to the device. */
interface VirtualRegister {
  readonly mask: number;
  read(): number;
  /** `merged` is the register with the written bytes (`byteMask`) applied. */
  write(merged: number, byteMask: number): void;
}

interface BarRegisterState {
  readonly bar: PlannedBar;
  low: number;
  high: number;
  sizingLow: boolean;
  sizingHigh: boolean;
}

/**
 * The guest's view of the device's PCI config space. Accesses are answered from the device's config
 * region (VFIO region 7) except:
 *
 * * BAR registers 0-5, emulated from the plan: the guest BAR size (`sizeMask`, so sizing with all-ones
 *   reads the mask with the flag bits), 64-bit BARs as two halves, a sizing write never moves anything,
 *   and a completed new address with memory decode on moves the BAR through the host (BarMapper).
 * * The expansion ROM BAR: hidden (reads 0, writes dropped).
 * * The MSI-X capability: Table and PBA Offset/BIR rewritten to where the plan puts them in the guest
 *   BAR; Message Control's enable and function mask emulated (they drive MsixInterrupts).
 * * COMMAND.MEM: forwarded to the device and mirrored on the BARs (clear: KVM slots removed, accesses
 *   no longer claimed; set: restored, after moving a BAR the guest reprogrammed while decode was off,
 *   in index order, so of two overlapping BARs the lower index holds the range and the other is parked).
 * * A BAR placed over another BAR or slot never makes a write throw: the host (BarMapper) parks it and its
 *   accesses are trapped (see `BarMapper.move`). A kernel fault during a move or decode change does throw;
 *   the registers keep what the guest wrote and the next COMMAND write (or write to that BAR) applies them.
 * * Extended capabilities the VMM cannot honour (Resizable BAR, SR-IOV, ARI by default) are unlinked
 *   from the chain and writes to them are dropped, as QEMU and cloud-hypervisor do.
 *
 * Standard-header type 0 devices only. I/O BARs and BARs absent from the plan read 0.
 *
 * {@link PassthroughDevice} builds one; use it directly only with your own MMIO dispatch.
 *
 * @example
 * const region = new RegionAccess(device, description);
 * const config = new VirtualConfigSpace({ bdf, region, host: mapper, bars: [0], msix: description.msix });
 * const vendor = config.configRead(0x00, 2);
 */
export class VirtualConfigSpace {
  readonly #o: VirtualConfigSpaceOptions;
  readonly #size: number;
  readonly #registers = new Map<number, VirtualRegister>();
  /** Byte ranges of hidden extended capabilities: writes there are dropped. */
  readonly #hidden: { start: number; end: number }[] = [];
  readonly #bars = new Map<number, BarRegisterState>();
  #memoryDecode: boolean;
  /**
   * A BAR move or a COMMAND.MEM change failed (a kernel fault): the host lags behind the registers, and the
   * next COMMAND write (or a write to that BAR) applies them again.
   */
  #unsettled = false;
  #msixControl = 0;

  /** @throws GuestError `NO_CONFIG_SPACE` when the device's config region is smaller than the 64-byte header. */
  constructor(options: VirtualConfigSpaceOptions) {
    this.#o = options;
    this.#size = Number(options.region.regionSize(CONFIG_REGION) ?? 0n);
    if (this.#size < 0x40) {
      throw new GuestError(`${options.bdf}: config region of ${this.#size} bytes`, { code: 'NO_CONFIG_SPACE', bdf: options.bdf });
    }
    this.#memoryDecode = (options.region.read(CONFIG_REGION, BigInt(PCI_COMMAND), 2) & COMMAND_MEMORY) !== 0;
    this.#emulateBars();
    this.#registers.set(ROM_BAR, { mask: ALL_ONES, read: () => 0, write: () => undefined });
    if (options.msix) this.#emulateMsix(options.msix);
    if (this.#size > EXT_CAP_START) this.#hideExtendedCaps(options.hideExtendedCaps ?? DEFAULT_HIDDEN_EXT_CAPS);
  }

  /** Memory decode as the guest last set it (COMMAND.MEM). */
  get memoryDecode(): boolean {
    return this.#memoryDecode;
  }

  /**
   * A guest config read of `size` (1, 2, 4) bytes at `offset` (naturally aligned). Beyond the device's
   * config space reads 0. Throws GuestError `BAD_CONFIG_ACCESS` for a misaligned access.
   * @example
   * const vendorDevice = device.configRead(0, 4);
   */
  configRead(offset: number, size: 1 | 2 | 4): number {
    this.#check(offset, size);
    if (offset + size > this.#size) return 0;
    const aligned = offset & ~3;
    const shift = (offset - aligned) * 8;
    const valueMask = size === 4 ? ALL_ONES : (1 << (size * 8)) - 1;
    const reg = this.#registers.get(aligned);
    const virtualBits = reg ? (reg.mask >>> shift) & valueMask : 0;
    const raw = virtualBits === valueMask ? 0 : this.#o.region.read(CONFIG_REGION, BigInt(offset), size);
    if (!reg) return raw;
    return ((raw & ~virtualBits) | ((reg.read() >>> shift) & virtualBits)) >>> 0;
  }

  /**
   * A guest config write. Emulated bits update the virtual state (and may move a BAR, toggle decode
   * or drive MSI-X); the rest is forwarded to the device. Throws GuestError for a misaligned access or
   * when what the write asks for (a BAR move, MSI-X setup) fails.
   */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.#check(offset, size);
    const valueMask = size === 4 ? ALL_ONES : (1 << (size * 8)) - 1;
    if (!Number.isInteger(value) || value < 0 || value > valueMask) {
      throw new RangeError(`config write value ${value} does not fit ${size} bytes`);
    }
    if (offset + size > this.#size || this.#inHiddenCap(offset)) return;
    const aligned = offset & ~3;
    const shift = (offset - aligned) * 8;
    const reg = this.#registers.get(aligned);
    const byteMask = (valueMask << shift) >>> 0;
    if (!reg) {
      this.#o.region.write(CONFIG_REGION, BigInt(offset), size, value);
      if (aligned === PCI_COMMAND && shift === 0) this.#command(value & 0xffff);
      return;
    }
    this.#forwardDeviceBytes(aligned, byteMask & ~reg.mask, (value << shift) >>> 0);
    const merged = ((reg.read() & ~byteMask) | ((value << shift) & byteMask)) >>> 0;
    reg.write(merged, byteMask & reg.mask);
  }

  // ---- BARs ---------------------------------------------------------------------------------------

  #emulateBars(): void {
    for (let index = 0; index < 6; index++) this.#registers.set(
      BAR0 + index * 4,
      { mask: ALL_ONES, read: () => 0, write: () => undefined },
    );
    for (const index of this.#o.bars) {
      const bar = this.#o.host.plannedBar(index);
      if (!bar) continue;
      const address = bar.guestAddress ?? 0n;
      const state: BarRegisterState = { bar, low: 0, high: 0, sizingLow: false, sizingHigh: false };
      state.low = this.#lowValue(bar, Number(address & 0xffff_ffffn));
      state.high = bar.is64Bit ? Number((address >> 32n) & 0xffff_ffffn) & this.#highMask(bar) : 0;
      this.#bars.set(index, state);
      this.#registers.set(BAR0 + index * 4, {
        mask: ALL_ONES,
        read: () => state.low,
        write: (merged) => this.#barWrite(state, 'low', merged),
      });
      if (bar.is64Bit && index < 5) {
        this.#registers.set(BAR0 + (index + 1) * 4, {
          mask: ALL_ONES,
          read: () => state.high,
          write: (merged) => this.#barWrite(state, 'high', merged),
        });
      }
    }
  }

  /** Address bits the BAR size allows, plus the read-only flag bits (memory, 64-bit type, prefetchable). */
  #lowValue(bar: PlannedBar, written: number): number {
    const flags = (bar.is64Bit ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
    const addressMask = Number(bar.sizeMask & 0xffff_fff0n);
    return ((written & addressMask) | flags) >>> 0;
  }

  #highMask(bar: PlannedBar): number {
    return Number((bar.sizeMask >> 32n) & 0xffff_ffffn);
  }

  #barWrite(state: BarRegisterState, half: 'low' | 'high', merged: number): void {
    const sizing = merged === ALL_ONES;
    if (half === 'low') {
      state.low = this.#lowValue(state.bar, merged);
      state.sizingLow = sizing;
    } else {
      state.high = (merged & this.#highMask(state.bar)) >>> 0;
      state.sizingHigh = sizing;
    }
    if (!sizing && this.#memoryDecode) this.#placeBar(state);
  }

  /** The address the BAR registers hold, or undefined while a half holds a sizing pattern. */
  #programmedAddress(state: BarRegisterState): bigint | undefined {
    if (state.sizingLow || state.sizingHigh) return undefined;
    return (BigInt(state.high) << 32n) | BigInt((state.low & 0xffff_fff0) >>> 0);
  }

  /** Moves the BAR to what the registers say, when that differs from where it is. */
  #placeBar(state: BarRegisterState): void {
    const index = state.bar.index;
    const address = this.#programmedAddress(state);
    if (address === undefined || address === this.#o.host.plannedBar(index)?.guestAddress) return;
    try {
      this.#o.host.move(index, address);
    } catch (error) {
      this.#unsettled = true;
      throw GuestError.wrap(error, `${this.#o.bdf}: moving BAR${index} to ${hex(address)}`, { bdf: this.#o.bdf, bar: index });
    }
    this.#o.hooks?.moved?.(index, address);
  }

  #command(command: number): void {
    const decode = (command & COMMAND_MEMORY) !== 0;
    if (decode === this.#memoryDecode && !this.#unsettled) return;
    this.#memoryDecode = decode;
    // Every step below is idempotent: after a failure the next COMMAND write finishes the job.
    this.#unsettled = true;
    for (const state of this.#decodeOrder(decode)) {
      const index = state.bar.index;
      // BARs reprogrammed while decode was off (or whose move failed) move before they decode again.
      if (decode) this.#placeBar(state);
      this.#o.host.setDecode(index, decode);
      this.#o.hooks?.decode?.(index, decode);
    }
    this.#unsettled = false;
  }

  /**
   * On: index order, so where two BARs overlap the lower index holds the range (the host parks the other).
   * Off: parked BARs first, so a holder going off does not hand its range to a BAR that is going off too.
   */
  #decodeOrder(decode: boolean): BarRegisterState[] {
    const states = [...this.#bars.values()];
    if (decode) return states;
    const parked = (state: BarRegisterState): boolean => this.#o.host.parking?.(state.bar.index) !== undefined;
    return [...states.filter(parked), ...states.filter((s) => !parked(s))];
  }

  // ---- MSI-X --------------------------------------------------------------------------------------

  #emulateMsix(msix: MsixDescription): void {
    const cap = msix.capOffset;
    const device = this.#o.region.read(CONFIG_REGION, BigInt(cap + 2), 2);
    this.#msixControl = device & MSIX_TABLE_SIZE;
    this.#registers.set(cap, {
      mask: 0xffff_0000,
      read: () => (this.#msixControl << 16) >>> 0,
      write: (merged, byteMask) => {
        if ((byteMask & 0xffff_0000) === 0) return;
        const control = merged >>> 16;
        const enabled = (control & MSIX_ENABLE) !== 0;
        const masked = (control & MSIX_FUNCTION_MASK) !== 0;
        this.#o.hooks?.msixControl?.(enabled, masked);
        this.#msixControl = (this.#msixControl & MSIX_TABLE_SIZE) | (enabled ? MSIX_ENABLE : 0) | (masked ? MSIX_FUNCTION_MASK : 0);
      },
    });
    const guestOffset = (bir: number, which: 'table' | 'pba', fallback: bigint): number => {
      const planned = this.#o.host.plannedBar(bir)?.msix?.[which]?.offset ?? fallback;
      return (Number(planned & 0xffff_fff8n) | bir) >>> 0;
    };
    const table = guestOffset(msix.table.bir, 'table', msix.table.offset);
    const pba = guestOffset(msix.pba.bir, 'pba', msix.pba.offset);
    this.#registers.set(cap + 4, { mask: ALL_ONES, read: () => table, write: () => undefined });
    this.#registers.set(cap + 8, { mask: ALL_ONES, read: () => pba, write: () => undefined });
  }

  // ---- extended capabilities ----------------------------------------------------------------------

  /** Walks the extended capability chain (loop-safe) and rewrites `next` pointers around hidden ones. */
  #hideExtendedCaps(hide: readonly number[]): void {
    const caps: { offset: number; id: number; header: number }[] = [];
    const seen = new Set<number>();
    let offset = EXT_CAP_START;
    while (offset >= EXT_CAP_START && offset + 4 <= this.#size && !seen.has(offset)) {
      seen.add(offset);
      const header = this.#o.region.read(CONFIG_REGION, BigInt(offset), 4);
      if (header === 0 || header === ALL_ONES) break;
      caps.push({ offset, id: header & 0xffff, header });
      offset = (header >>> 20) & 0xffc;
    }
    const visible = caps.filter((c) => !hide.includes(c.id));
    if (visible.length === caps.length) return;
    const sortedOffsets = caps.map((c) => c.offset).sort((a, b) => a - b);
    for (const c of caps.filter((x) => hide.includes(x.id))) {
      this.#hidden.push({ start: c.offset, end: sortedOffsets.find((o) => o > c.offset) ?? this.#size });
    }
    const nextVisible = (after: number): number => visible.find((c) => caps.indexOf(c) > after)?.offset ?? 0;
    caps.forEach((c, i) => {
      const hidden = hide.includes(c.id);
      if (hidden && c.offset !== EXT_CAP_START) return;
      // The chain must start at 0x100: a hidden first capability becomes an empty header (id 0) pointing on.
      const header = hidden ? (nextVisible(i) << 20) >>> 0 : ((c.header & 0x000f_ffff) | (nextVisible(i) << 20)) >>> 0;
      this.#registers.set(c.offset, { mask: ALL_ONES, read: () => header, write: () => undefined });
    });
  }

  #inHiddenCap(offset: number): boolean {
    return this.#hidden.some((h) => offset >= h.start && offset < h.end);
  }

  // ---- helpers ------------------------------------------------------------------------------------

  /** Writes the device-owned bytes of a partly emulated dword, one byte at a time. */
  #forwardDeviceBytes(aligned: number, deviceBits: number, shifted: number): void {
    for (let byte = 0; byte < 4; byte++) {
      if (((deviceBits >>> (byte * 8)) & 0xff) === 0) continue;
      this.#o.region.write(CONFIG_REGION, BigInt(aligned + byte), 1, (shifted >>> (byte * 8)) & 0xff);
    }
  }

  #check(offset: number, size: number): void {
    if ((size !== 1 && size !== 2 && size !== 4) || !Number.isInteger(offset) || offset < 0 || offset % size !== 0 || offset > 0xfff) {
      throw new GuestError(`${this.#o.bdf}: config access of ${size} bytes at ${String(offset)} is not naturally aligned in 0-0xfff`, {
        code: 'BAD_CONFIG_ACCESS', bdf: this.#o.bdf,
      });
    }
  }
}
