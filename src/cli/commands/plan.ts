/** `vfio-bars plan`: run the planner on a built-in profile or a captured description. */
import { parseArgs } from 'node:util';
// The public API only.
import { hex, planBarMappings, planToJSON, type DeviceDescription, type MappingPlan, type PlannedBar } from '../../index.js';
import type { CliEnvironment } from '../environment.js';
import { loadProfile } from '../profiles.js';
import { readDescriptionFile } from '../read-description.js';
import { renderPlan } from '../render.js';
import { UsageError, parseBarGpas, parseMsixStrategy, parsePageSize } from '../usage.js';

/** VFIO_REGION_INFO_FLAG_MMAP (the public API does not export the flag table yet). */
const VFIO_REGION_MMAP = 4;

const OPTIONS = {
  profile: { type: 'string' },
  description: { type: 'string' },
  'page-size': { type: 'string' },
  'bar-gpa': { type: 'string', multiple: true },
  msix: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

/**
 * `vfio-bars plan ARGS`: the plan as a table (with the naive-vs-planned comparison) or as JSON.
 * @throws {UsageError} for bad options (exit 2); the planner's PlanError for a description it cannot plan.
 */
export function planCommand(args: string[], env: CliEnvironment): string {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  const description = loadDescription(values.profile, values.description);
  const pageSize = values['page-size'] === undefined ? env.hostPageSize() : parsePageSize(values['page-size']);
  const msix = parseMsixStrategy(values.msix);
  const barAddresses = parseBarGpas(values['bar-gpa'] ?? []);
  const plan = planBarMappings(description, { pageSize, msix, barAddresses });
  if (values.json) return JSON.stringify(planToJSON(plan), null, 2);
  return [naiveComparison(description, plan), renderPlan(plan)].filter(Boolean).join('\n\n');
}

/** Exactly one of `--profile NAME` (built-in) or `--description FILE` (bounded read). */
export function loadDescription(profile: string | undefined, file: string | undefined): DeviceDescription {
  if ((profile === undefined) === (file === undefined)) {
    throw new UsageError('plan needs exactly one of --profile NAME or --description FILE', );
  }
  return profile !== undefined ? loadProfile(profile) : readDescriptionFile(file!);
}

/** What vfio-bars does instead of the naive slot, in one sentence. */
function describeFix(bar: PlannedBar): string {
  const first = bar.mappings[0];
  if (!first) return 'traps it (see below).';
  const msixOffset = bar.msix?.table?.offset ?? bar.msix?.pba?.offset;
  const moved = bar.msix?.relocated && msixOffset !== undefined
    ? ` and moves MSI-X to ${hex(msixOffset)} in a trapped upper half of a ${hex(bar.guestSize)} guest BAR`
    : '';
  return `maps ${hex(first.size)} (${first.reason})${moved}.`;
}

/**
 * What a VMM without vfio-bars would do: register each mmappable BAR as a slot of its own size. Shown
 * next to the plan when that would fail, so the problem and the fix read side by side.
 */
function naiveComparison(description: DeviceDescription, plan: MappingPlan): string {
  const lines: string[] = [];
  for (const bar of plan.bars) {
    const region = description.regions.find((r) => r.index === bar.index);
    if (!region || (region.flags & VFIO_REGION_MMAP) === 0 || region.size % plan.pageSize === 0n) continue;
    lines.push(
      `BAR${bar.index} is ${hex(region.size)} bytes on a ${hex(plan.pageSize)}-byte-page host.`,
      `  naive:     KVM_SET_USER_MEMORY_REGION(memory_size=${hex(region.size)}) -> EINVAL (KVM requires memory_size % PAGE_SIZE == 0)`,
      `  vfio-bars: ${describeFix(bar)}`,
    );
  }
  return lines.length > 0 ? ['The problem, and the fix:', ...lines].join('\n') : '';
}
