/**
 * The example VMM (examples/arm64-vmm: TypeScript on the library's public API, run by node arm64) boots a
 * nested Linux guest inside the emulated 64 KiB-page aarch64 host: real KVM, the in-kernel vGICv3 + ITS
 * and timer, the VMM's pl011 console and ECAM host bridge through MMIO exits, PSCI SYSTEM_OFF at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootVmm, buildVmmInitrd, prepareVmm, type VmmArtefacts, type VmmScenario } from './vmm/run-vmm.js';

let artefacts: VmmArtefacts;
let initrd: { initrd: string; dispose: () => void } | undefined;

const SCENARIO: VmmScenario = { name: 'vmm-boot-64k', pages: '64K', iommu: 'smmu', pci: true };

beforeAll(() => {
  artefacts = prepareVmm();
  initrd = buildVmmInitrd(artefacts, SCENARIO);
}, 1_800_000);

afterAll(() => initrd?.dispose());

describe('example arm64 VMM inside the emulated 64 KiB host', () => {
  it('boots the nested guest kernel (4 KiB pages) to its init, which reports and powers off through PSCI', async () => {
    const run = await bootVmm(artefacts, initrd!.initrd, SCENARIO);
    const r = run.report;
    console.log(`${SCENARIO.name}: outer run ${run.seconds.toFixed(1)} s, VMM ${r.seconds.toFixed(2)} s, exits ${JSON.stringify(r.exits)}, `
      + `mmio ${JSON.stringify(r.mmio)}, console ${r.consoleBytes} B, log ${run.logPath}`);
    expect(r.event).toBe('shutdown');
    const up = run.guest.get('VMM-GUEST-UP')?.[0];
    expect(up).toMatch(/kernel=6\.1\.\d+ cpus=1 KernelPageSize: 4 kB/);
    expect(run.guest.has('VMM-GUEST-DONE')).toBe(true);
    // The in-kernel timer ticks through the vGIC; the console is the VMM's pl011.
    expect(run.guest.get('VMM-GUEST-IRQ')?.join('\n')).toMatch(/GICv3 27 Level arch_timer/);
    expect(run.guest.get('VMM-GUEST-IRQ')?.join('\n')).toMatch(/GICv3 33 Level uart-pl011/);
    // The guest's generic ECAM driver enumerated bus 0 (empty here) and took the 64-bit window.
    expect(run.guest.get('VMM-GUEST-PCI')).toEqual(['']);
    expect(run.guest.get('VMM-GUEST-IOMEM')?.join('\n')).toMatch(/8000000000-ffffffffff : pcie@4010000000/);
    expect((r as { pciConfigAccesses?: number }).pciConfigAccesses).toBeGreaterThanOrEqual(32);
    // Every exit was a device the VMM owns, then one system event; a quiet guest makes few console exits.
    expect(r.mmio.unclaimed).toBeUndefined();
    expect(r.exits).toEqual({ mmio: r.exits.mmio, 'system-event': 1 });
    expect(r.consoleBytes).toBeLessThan(4000);
  });
});
