/**
 * Issue 11, kernel side: a kernel that answers absurd counts or sizes gets a typed error in bounded time,
 * and every syscall of open() + describe() failing in turn — private container, noiommu, iommufd, a shared
 * context with two functions of one group, and KVM's VFIO pseudo-device — leaves no fd, mmap, DMA map or
 * KVM file behind.
 */
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { IommuContext, KvmVfioDevice, KvmVm, MAX_DEVICE_REGIONS, VfioBarsError, VfioDevice, VfioError } from '../../src/index.js';
import { qemuNvme } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import type { HostileReplies } from '../fake/fake-hostile.js';
import { captureError } from '../helpers/capture-error.js';
import { fakeSysfs, qemuNvmeConfigSpace } from './fixtures.js';
import { multiSetup } from './multi-fixtures.js';

const BDF = '0000:00:01.0';

/** QEMU's NVMe, but BAR0 reports two sparse mmap areas (around its MSI-X table) as a variant driver would. */
const sparseNvme = {
  ...qemuNvme,
  regions: qemuNvme.regions.map((r) => (r.index !== 0 ? r : {
    ...r,
    capabilities: [{
      kind: 'sparse-mmap' as const,
      id: 1 as const,
      version: 1,
      areas: [{ offset: 0n, size: 0x2000n }, { offset: 0x3000n, size: 0x1000n }],
    }],
  })),
};

function hostileSetup(hostile: HostileReplies) {
  const roots = fakeSysfs(BDF, '7');
  const device = hostile.nrAreas === undefined ? qemuNvme : sparseNvme;
  const kernel = new FakeKernel({ pageSize: 0x1000, device, config: qemuNvmeConfigSpace(), devRoot: roots.devRoot, hostile });
  return { kernel, options: { ...roots, syscalls: kernel } };
}

describe('a kernel answering absurd counts and sizes', () => {
  const cases: [string, HostileReplies, string][] = [
    ['num_regions 0xffffffff', { numRegions: 0xffff_ffff }, 'TOO_MANY_REGIONS'],
    ['num_regions one above the bound', { numRegions: MAX_DEVICE_REGIONS + 1 }, 'TOO_MANY_REGIONS'],
    ['num_irqs 0xffffffff', { numIrqs: 0xffff_ffff }, 'TOO_MANY_IRQS'],
    ['an irq with 0xffffffff vectors', { irqCount: 0xffff_ffff }, 'IRQ_COUNT_ABSURD'],
    ['region argsz 0xffffffff', { regionArgsz: 0xffff_ffff }, 'ARGSZ_TOO_LARGE'],
    ['region cap_offset far beyond argsz', { capOffset: 0xffff_fff0 }, 'CAP_OUT_OF_BOUNDS'],
    ['region cap_offset inside the fixed struct', { capOffset: 8 }, 'CAP_OUT_OF_BOUNDS'],
    ['sparse mmap nr_areas 0xffffffff', { nrAreas: 0xffff_ffff }, 'SPARSE_TOO_MANY_AREAS'],
  ];
  it.each(cases)('%s: a typed error after a bounded number of calls, in bounded time, no fd left', (_name, hostile, code) => {
    const { kernel, options } = hostileSetup(hostile);
    const device = VfioDevice.open(BDF, options);
    const from = kernel.calls.length;
    const started = performance.now();
    const error = captureError(() => device.describe());
    expect(performance.now() - started).toBeLessThan(1000);
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code, bdf: BDF });
    expect(kernel.calls.length - from).toBeLessThan(200);
    device.close();
    expect(kernel.live().fds).toBe(0);
  });

  it('num_regions exactly at the bound is walked (missing indices skipped), keyed by index', () => {
    const { kernel, options } = hostileSetup({ numRegions: MAX_DEVICE_REGIONS });
    using device = VfioDevice.open(BDF, options);
    const from = kernel.calls.length;
    const description = device.describe();
    expect(description.numRegions).toBe(MAX_DEVICE_REGIONS);
    expect(description.regions.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(kernel.calls.filter((c, i) => i >= from && c.name === 'VFIO_DEVICE_GET_REGION_INFO').length).toBe(MAX_DEVICE_REGIONS + 1);
  });
});

interface Scenario {
  readonly name: string;
  /** Builds the kernel and runs open() + describe() for every device; `opened` collects what the test must close. */
  run(kernel: FakeKernel, options: Record<string, unknown>, opened: Disposable[]): void;
  setup(): { kernel: FakeKernel; options: Record<string, unknown> };
}

function single(noiommu: boolean, cdev: boolean) {
  return () => {
    const roots = fakeSysfs(BDF, '7', noiommu, cdev);
    const kernel = new FakeKernel({ pageSize: 0x1000, device: qemuNvme, config: qemuNvmeConfigSpace(), noiommu, devRoot: roots.devRoot });
    return { kernel, options: { ...roots, syscalls: kernel } as Record<string, unknown> };
  };
}

const privateScenario = (name: string, noiommu: boolean, cdev: boolean, kvm: boolean): Scenario => ({
  name,
  setup: single(noiommu, cdev),
  run(kernel, options, opened) {
    const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${options.devRoot as string}/kvm` });
    opened.push(vm);
    const pseudo = kvm ? KvmVfioDevice.create(vm) : undefined;
    if (pseudo) opened.push(pseudo);
    const device = VfioDevice.open(BDF, { ...options, ...(noiommu && { iommu: 'noiommu' as const }), ...(pseudo && { kvm: pseudo }) });
    opened.push(device);
    device.describe();
  },
});

const sharedScenario = (name: string, cdev: boolean): Scenario => ({
  name,
  setup: () => multiSetup(cdev),
  run(kernel, options, opened) {
    const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${options.devRoot as string}/kvm` });
    opened.push(vm);
    const kvm = KvmVfioDevice.create(vm);
    opened.push(kvm);
    const context = IommuContext.open(options);
    opened.push(context);
    context.mapGuestMemory(0n, 0x7f00_0000_0000n, 0x10_0000n);
    for (const bdf of ['0000:00:01.0', '0000:00:01.1', '0000:00:02.0']) {
      const device = VfioDevice.open(bdf, { ...options, context, kvm });
      opened.push(device);
      device.describe();
    }
  },
});

const scenarios: Scenario[] = [
  privateScenario('private type1v2 container', false, false, false),
  privateScenario('private noiommu container', true, false, false),
  privateScenario('private iommufd', false, true, false),
  privateScenario('private type1v2 container + KVM pseudo-device', false, false, true),
  privateScenario('private iommufd + KVM pseudo-device', false, true, true),
  sharedScenario('shared container: two functions of one group and another group, pseudo-device, guest RAM', false),
  sharedScenario('shared iommufd: three devices, pseudo-device, guest RAM', true),
];

/** Runs the scenario and closes what it opened, newest first. */
function runAndClose(scenario: Scenario, kernel: FakeKernel, options: Record<string, unknown>): unknown {
  const opened: Disposable[] = [];
  try {
    scenario.run(kernel, options, opened);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    for (const resource of opened.reverse()) resource[Symbol.dispose]();
  }
}

describe('every syscall of open() + describe() failing in turn leaves nothing behind', () => {
  it.each(scenarios.map((s) => [s.name, s] as const))('%s', (_name, scenario) => {
    const probe = scenario.setup();
    expect(runAndClose(scenario, probe.kernel, probe.options)).toBeUndefined();
    expect(probe.kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
    // Only calls that acquire or query can fail the scenario: it ends with the last describe's config read,
    // and everything after that (closes, unmaps, KVM file deletes) is teardown, which never throws.
    const lastRead = probe.kernel.calls.findLastIndex((c) => c.name === 'pread');
    const failable = probe.kernel.calls.filter((c) => c.index <= lastRead && c.name !== 'close' && c.name !== 'munmap');
    expect(failable.length).toBeGreaterThan(10);
    for (const call of failable) {
      const { kernel, options } = scenario.setup();
      kernel.failAt(call.index, constants.errno.EIO);
      const error = runAndClose(scenario, kernel, options);
      expect(error, `call ${call.index} ${call.name}`).toBeInstanceOf(VfioBarsError);
      expect(error, `call ${call.index} ${call.name}`).toMatchObject({ code: 'EIO' });
      const leak = `leak after failing call ${call.index} ${call.name} ${call.detail}`;
      expect(kernel.live(), leak).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
    }
  });
});
