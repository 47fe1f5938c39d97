/**
 * Properties every plan must have. Tests assert them for random and hostile devices; the mapper checks
 * the description-free part (validatePlan) before touching the kernel. Returns human-readable violations
 * (empty = sound plan): those of `planViolations` (representability, page granularity, MSI-X trapped and
 * inside the guest BAR, exact coverage, no BAR overlap), what backs every trapped byte (trap-invariants.ts),
 * and agreement with the device description.
 */
import type { DeviceDescription } from '../vfio/description.js';
import { regionByIndex } from '../vfio/description.js';
import { hex } from '../errors.js';
import type { MappingPlan } from './types.js';
import { PlanError } from './errors.js';
import { planViolations } from './validate-plan.js';
import { checkTrappedBacking } from './trap-invariants.js';

/**
 * Every violation of the plan's invariants, as messages prefixed with the BAR (`BAR0: ...`); [] when sound.
 * Never throws for a malformed plan: its first defect becomes the only message.
 * @example
 * expect(checkPlanInvariants(plan, description)).toEqual([]);
 */
export function checkPlanInvariants(plan: MappingPlan, description: DeviceDescription): string[] {
  let violations: PlanError[];
  try {
    violations = planViolations(plan);
  } catch (error) {
    if (error instanceof PlanError) return [`malformed plan (${error.code}): ${error.message}`];
    throw error;
  }
  const perBar = plan.bars.flatMap((bar) => [
    ...againstDescription(bar, description),
    ...checkTrappedBacking(bar, description).map((v) => `BAR${bar.index}: ${v}`),
  ]);
  return [...violations.map((v) => v.message), ...perBar];
}

function againstDescription(bar: MappingPlan['bars'][number], description: DeviceDescription): string[] {
  const region = regionByIndex(description, bar.index);
  if (!region) return [`BAR${bar.index}: no region ${bar.index} in the device description`];
  const out: string[] = [];
  if (region.size !== bar.regionSize) out.push(`BAR${bar.index}: region size ${hex(bar.regionSize)}, the device's is ${hex(region.size)}`);
  if (region.offset !== bar.regionOffset) {
    out.push(`BAR${bar.index}: region offset ${hex(bar.regionOffset)}, the device's is ${hex(region.offset)}`);
  }
  return out;
}
