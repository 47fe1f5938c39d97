/**
 * Random sequences against a shared IommuContext (both backends, with KVM's VFIO pseudo-device): devices of
 * one and of two groups opened and closed, guest RAM mapped and unmapped, the context closed at any point.
 * After every step the kernel holds exactly what the model says (DMA maps, KVM files); at the end, nothing.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { IommuContext, KvmVfioDevice, KvmVm, VfioDevice, VfioError } from '../../src/index.js';
import { captureError } from '../helpers/capture-error.js';
import { TOPOLOGY, multiSetup } from './multi-fixtures.js';

const DEVICES = ['0000:00:01.0', '0000:00:01.1', '0000:00:02.0'];
const groupOf = (bdf: string): string => TOPOLOGY.find((g) => g.devices.some((d) => d.bdf === bdf))!.id;
const RAM = 0x7f00_0000_0000n;

type Action =
  | { kind: 'open'; device: number }
  | { kind: 'close'; device: number }
  | { kind: 'map'; slot: number }
  | { kind: 'unmap'; slot: number }
  | { kind: 'closeContext' };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('open' as const), device: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('close' as const), device: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('map' as const), slot: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unmap' as const), slot: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'closeContext' as const }) },
);

function run(cdev: boolean, actions: readonly Action[]): void {
  const { kernel, options } = multiSetup(cdev);
  const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${options.devRoot}/kvm` });
  const kvm = KvmVfioDevice.create(vm);
  const context = IommuContext.open(options);
  const open = new Map<number, VfioDevice>();
  const mapped = new Set<number>();
  let contextClosed = false;

  const expectKernel = (): void => {
    const groups = new Set([...open.keys()].map((i) => groupOf(DEVICES[i]!)));
    // A container holds the maps only while a group is in it; an IOAS holds them while the context lives.
    const applied = cdev ? !contextClosed || open.size > 0 : groups.size > 0;
    const live = kernel.live();
    expect(live.dmaMaps).toBe(applied ? mapped.size : 0);
    expect(live.kvmFiles).toBe(cdev ? open.size : groups.size);
  };

  for (const step of actions) {
    switch (step.kind) {
      case 'open': {
        if (open.has(step.device)) break;
        const openIt = (): VfioDevice => VfioDevice.open(DEVICES[step.device]!, { ...options, context, kvm });
        if (contextClosed) expect(captureError(openIt)).toMatchObject({ code: 'CLOSED' });
        else open.set(step.device, openIt());
        break;
      }
      case 'close':
        open.get(step.device)?.close();
        open.delete(step.device);
        break;
      case 'map': {
        const call = (): void => context.mapGuestMemory(BigInt(step.slot) * 0x10000n, RAM, 0x1000n);
        if (contextClosed) expect(captureError(call)).toMatchObject({ code: 'CLOSED' });
        else if (mapped.has(step.slot)) expect(captureError(call)).toMatchObject({ code: 'DMA_OVERLAP' });
        else {
          call();
          mapped.add(step.slot);
        }
        break;
      }
      case 'unmap': {
        const call = (): void => context.unmapGuestMemory(BigInt(step.slot) * 0x10000n, 0x1000n);
        if (contextClosed) expect(captureError(call)).toMatchObject({ code: 'CLOSED' });
        else if (!mapped.has(step.slot)) expect(captureError(call)).toBeInstanceOf(VfioError);
        else {
          call();
          mapped.delete(step.slot);
        }
        break;
      }
      case 'closeContext':
        context.close();
        contextClosed = true;
        break;
    }
    if (contextClosed && open.size === 0) mapped.clear(); // the last reference took the mappings with it
    expectKernel();
  }
  for (const device of open.values()) device.close();
  context.close();
  kvm.close();
  vm.close();
  expect(kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
}

describe('shared IommuContext under random open/close/map/unmap sequences', () => {
  it('legacy container: the kernel always holds what the model says, and nothing at the end', () => {
    fc.assert(fc.property(fc.array(action, { maxLength: 40 }), (actions) => run(false, actions)), { numRuns: 150 });
  });

  it('iommufd: the kernel always holds what the model says, and nothing at the end', () => {
    fc.assert(fc.property(fc.array(action, { maxLength: 40 }), (actions) => run(true, actions)), { numRuns: 150 });
  });
});
