/**
 * The example VMM (examples/arm64-vmm: TypeScript on the library's public API, run by node arm64) inside the
 * emulated aarch64 hosts (64, 16 and 4 KiB pages): real KVM, the in-kernel vGICv3 + ITS and timer, the VMM's pl011 console
 * and ECAM host bridge through MMIO exits, PSCI SYSTEM_OFF at the end. Then QEMU's NVMe passed through to the
 * nested guest, whose own nvme driver is the judge: it probes, reads what the host wrote, writes what the host
 * checks, and its MSI-X interrupts arrive through irqfd and the vITS.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootVmm, buildVmmInitrd, prepareVmm, type VmmArtefacts, type VmmRun, type VmmScenario } from './vmm/run-vmm.js';

let artefacts: VmmArtefacts;
const staged: (() => void)[] = [];

beforeAll(() => {
  artefacts = prepareVmm();
}, 1_800_000);

afterAll(() => {
  for (const dispose of staged) dispose();
});

async function run(s: VmmScenario): Promise<VmmRun> {
  const { initrd, dispose } = buildVmmInitrd(artefacts, s);
  staged.push(dispose);
  const r = await bootVmm(artefacts, initrd, s);
  console.log(`${s.name}: outer run ${r.seconds.toFixed(1)} s, VMM ${r.report.seconds.toFixed(2)} s, `
    + `exits ${JSON.stringify(r.report.exits)}, `
    + `mmio ${JSON.stringify(r.report.mmio)}, console ${r.report.consoleBytes} B, log ${r.logPath}`);
  return r;
}

interface PassthroughReport {
  iommu: string;
  bars: { index: number; gpa: string; guestSize: string; state: string; slots: number; parked?: string }[];
  trappedAccesses: number;
  configAccesses: number;
}

/** 4 MiB of a known pattern: the guest reads the first MiB back; it writes 64 KiB at 2 MiB. */
function patternDisk(file: string): string {
  const disk = Buffer.alloc(4 << 20);
  for (let i = 0; i < disk.length / 4; i++) disk.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i * 4);
  writeFileSync(file, disk);
  return createHash('md5').update(disk.subarray(0, 1 << 20)).digest('hex');
}

describe('example arm64 VMM inside the emulated aarch64 hosts', () => {
  it('boots the nested guest kernel (4 KiB pages) to its init, which reports and powers off through PSCI', async () => {
    const { report: r, guest } = await run({ name: 'vmm-boot-64k', pages: '64K', iommu: 'smmu', pci: true });
    expect(r.event).toBe('shutdown');
    expect(guest.get('VMM-GUEST-UP')?.[0]).toMatch(/kernel=6\.1\.\d+ cpus=1 KernelPageSize: 4 kB/);
    expect(guest.has('VMM-GUEST-DONE')).toBe(true);
    // The in-kernel timer ticks through the vGIC; the console is the VMM's pl011.
    expect(guest.get('VMM-GUEST-IRQ')?.join('\n')).toMatch(/GICv3 27 Level arch_timer/);
    expect(guest.get('VMM-GUEST-IRQ')?.join('\n')).toMatch(/GICv3 33 Level uart-pl011/);
    // The guest's generic ECAM driver enumerated bus 0 (empty here) and took the 64-bit window.
    expect(guest.get('VMM-GUEST-PCI')).toEqual(['']);
    expect(guest.get('VMM-GUEST-IOMEM')?.join('\n')).toMatch(/8000000000-ffffffffff : pcie@4010000000/);
    expect((r as { pciConfigAccesses?: number }).pciConfigAccesses).toBeGreaterThanOrEqual(32);
    // Every exit was a device the VMM owns, then one system event; a quiet guest makes few console exits.
    expect(r.mmio.unclaimed).toBeUndefined();
    expect(r.exits).toEqual({ mmio: r.exits.mmio, 'system-event': 1 });
    expect(r.consoleBytes).toBeLessThan(4000);
  });

  // BAR0 (16 KiB, MSI-X table inside) is doubled so the relocated table is trapped apart from the registers;
  // on 64 KiB pages the register half is also expanded to one page. Either way one direct slot.
  // On 64 KiB pages also without an IOMMU (guest RAM at guest physical = host physical, one huge page) and on
  // Linux 6.12 through iommufd and the VFIO cdev.
  const hosts = [
    { pages: '64K', iommu: 'smmu', guestSize: '0x20000', mode: 'type1v2', label: 'SMMUv3' },
    { pages: '64K', iommu: 'noiommu', guestSize: '0x20000', mode: 'noiommu', label: 'noiommu (guest RAM at its physical address)' },
    { pages: '64K', iommu: 'smmu', kernel: '6.12', vmmIommu: 'iommufd', guestSize: '0x20000', mode: 'iommufd',
      label: "Linux 6.12, SMMUv3, iommu: 'iommufd'" },
    { pages: '16K', iommu: 'smmu', guestSize: '0x8000', mode: 'type1v2', label: 'SMMUv3' },
    { pages: '4K', iommu: 'smmu', guestSize: '0x8000', mode: 'type1v2', label: 'SMMUv3' },
  ] as const;
  for (const host of hosts) {
    const title = `${host.pages} host, ${host.label}: QEMU's NVMe passed through; `
      + "the guest's nvme driver probes, reads the host's pattern, writes one back, MSI-X counts";
    it(title, async () => {
      const kernel = 'kernel' in host ? host.kernel : '6.1';
      const name = `vmm-nvme-${host.pages.toLowerCase()}-${host.iommu}${kernel === '6.12' ? '-6.12' : ''}`;
      const disk = path.join(artefacts.CACHE, 'vmm-nvme-disk.img');
      const md5 = patternDisk(disk);
      const { report: r, guest } = await run({
        name, pages: host.pages, iommu: host.iommu, kernel, nvmeDisk: disk,
        ...('vmmIommu' in host ? { vmmIommu: host.vmmIommu } : {}),
      });
      const device = (r as { passthrough?: PassthroughReport }).passthrough!;
      console.log(
        `${name}: iommu ${device.iommu}, BARs ${JSON.stringify(device.bars)}, `
          + `trapped accesses ${device.trappedAccesses}, config accesses ${device.configAccesses}`,
      );
      expect(r.event).toBe('shutdown');
      expect(device.iommu).toBe(host.mode);
      // Without an IOMMU guest RAM sits at its huge page's host physical address (512 MiB aligned), not at 1 GiB.
      const ramBase = BigInt((r as { ramBase?: string }).ramBase!);
      if (host.iommu === 'noiommu') expect([ramBase % 0x2000_0000n, ramBase === 0x4000_0000n]).toEqual([0n, false]);
      else expect(ramBase).toBe(0x4000_0000n);
      expect(guest.get('VMM-GUEST-PCI')).toEqual(['0000:00:01.0 ']);
      expect(guest.get('VMM-GUEST-NVME')?.[0]).toBe('model=QEMUNVMeCtrl sectors=8192');
      expect(guest.get('VMM-GUEST-READMD5')).toEqual([md5]);
      expect(guest.get('VMM-GUEST-WROTE')).toEqual(['rc=0']);
      const written = readFileSync(disk).subarray(2 << 20, (2 << 20) + 0x1_0000);
      expect(written.toString('latin1')).toBe('VMM-GUEST-WROTE-THIS\n'.repeat(4000).slice(0, 0x1_0000));
      // MSI-X through irqfd and the vITS: the I/O queue's vector counted the guest's commands.
      const irqs = guest.get('VMM-GUEST-NVMEIRQ') ?? [];
      const ioQueue = irqs.find((l) => / ITS-MSI \d+ Edge nvme0q1$/.test(l));
      expect(ioQueue, irqs.join('\n')).toBeDefined();
      expect(Number(ioQueue!.trim().split(' ')[1])).toBeGreaterThan(10);
      // The guest placed BAR0 itself, at the start of one of the bridge's windows; the library gave it a direct slot there.
      const bar0 = device.bars.find((b) => b.index === 0)!;
      expect(['0x10000000', '0x8000000000']).toContain(bar0.gpa);
      expect(bar0.state).toBe('direct');
      expect(device.bars.filter((b) => b.parked !== undefined)).toEqual([]);
      expect(bar0.slots).toBeGreaterThanOrEqual(1);
      expect(bar0.guestSize).toBe(host.guestSize);
      expect(device.trappedAccesses).toBeGreaterThan(0);
      expect(r.mmio.unclaimed).toBeUndefined();
    });
  }

  const e1000eTitle = '64K host, SMMUv3: QEMU\'s e1000e passed through (MSI-X in its own BAR3); '
    + 'the guest\'s e1000e driver probes and reads its MAC';
  it(e1000eTitle, async () => {
    const { report: r, guest } = await run({ name: 'vmm-e1000e-64k-smmu', pages: '64K', iommu: 'smmu', e1000e: true });
    const device = (r as { passthrough?: PassthroughReport }).passthrough!;
    console.log(
      `vmm-e1000e-64k-smmu: BARs ${JSON.stringify(device.bars)}, `
        + `trapped accesses ${device.trappedAccesses}, config accesses ${device.configAccesses}`,
    );
    expect(r.event).toBe('shutdown');
    // QEMU gives its first NIC the MAC 52:54:00:12:34:56; the driver reads it from the NVM through BAR0.
    expect(guest.get('VMM-GUEST-NET')).toEqual(['driver=e1000e mac=52:54:00:12:34:56']);
    // Its BARs are 32-bit: the guest put them in the window below 4 GiB; every one has a slot (BAR3 expanded).
    expect(device.bars.map((b) => [b.index, b.state, b.slots])).toEqual([[0, 'direct', 1], [1, 'direct', 1], [3, 'direct', 1]]);
    expect(device.bars.every((b) => BigInt(b.gpa) < 0x1_0000_0000n)).toBe(true);
    expect(device.trappedAccesses).toBeGreaterThan(0);
    expect(r.mmio.unclaimed).toBeUndefined();
  });
});
