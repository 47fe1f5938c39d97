/** `vfio-bars plan`: run the planner on a built-in profile or a captured description. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { descriptionFromJSON, hex, planBarMappings, planToJSON, realSyscalls, type DeviceDescription, type MappingPlan } from '../../index.js'; // the public API only
import { PROFILES } from '../profiles.js';
import { renderPlan } from '../render.js';
import { UsageError, parseBarGpa, parseSize } from '../usage.js';

export function planCommand(args: string[]): string {
  const { values } = parseArgs({
    args,
    options: {
      profile: { type: 'string' },
      description: { type: 'string' },
      'page-size': { type: 'string' },
      'bar-gpa': { type: 'string', multiple: true },
      msix: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const description = loadDescription(values.profile, values.description);
  const pageSize = values['page-size'] === undefined ? BigInt(realSyscalls().pageSize()) : parseSize(values['page-size'], '--page-size');
  const msix = values.msix ?? 'relocate';
  if (msix !== 'relocate' && msix !== 'hole') throw new UsageError(`--msix ${msix}: expected relocate or hole`);
  const barAddresses = new Map((values['bar-gpa'] ?? []).map(parseBarGpa));
  const plan = planBarMappings(description, { pageSize, msix, barAddresses });
  if (values.json) return JSON.stringify(planToJSON(plan), null, 2);
  return [naiveComparison(description, plan), renderPlan(plan)].filter(Boolean).join('\n\n');
}

export function loadDescription(profile: string | undefined, file: string | undefined): DeviceDescription {
  if ((profile === undefined) === (file === undefined)) throw new UsageError('plan needs exactly one of --profile NAME or --description FILE');
  if (profile !== undefined) {
    const found = PROFILES[profile];
    if (!found) throw new UsageError(`unknown profile ${JSON.stringify(profile)}; known: ${Object.keys(PROFILES).join(', ')}`);
    return found.description;
  }
  let text: string;
  try {
    text = readFileSync(file!, 'utf8');
  } catch (error) {
    throw new UsageError(`--description ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    return descriptionFromJSON(JSON.parse(text));
  } catch (error) {
    if (error instanceof SyntaxError) throw new UsageError(`--description ${file}: not JSON (${error.message})`);
    throw error;
  }
}

/**
 * What a VMM without vfio-bars would do: register each mmappable BAR as a slot of its own size. Shown
 * next to the plan when that would fail, so the problem and the fix read side by side.
 */
function naiveComparison(description: DeviceDescription, plan: MappingPlan): string {
  const lines: string[] = [];
  for (const bar of plan.bars) {
    const region = description.regions.find((r) => r.index === bar.index);
    if (!region || (region.flags & 4) === 0 || region.size % plan.pageSize === 0n) continue;
    const fix = bar.mappings.length > 0
      ? `maps ${hex(bar.mappings[0]!.size)} (${bar.mappings[0]!.reason})${bar.msix?.relocated ? ` and moves MSI-X to ${hex(bar.msix.table?.offset ?? bar.msix.pba!.offset)} in a trapped upper half of a ${hex(bar.guestSize)} guest BAR` : ''}.`
      : 'traps it (see below).';
    lines.push(
      `BAR${bar.index} is ${hex(region.size)} bytes on a ${hex(plan.pageSize)}-byte-page host.`,
      `  naive:     KVM_SET_USER_MEMORY_REGION(memory_size=${hex(region.size)}) -> EINVAL (KVM requires memory_size % PAGE_SIZE == 0)`,
      `  vfio-bars: ${fix}`,
    );
  }
  return lines.length > 0 ? ['The problem, and the fix:', ...lines].join('\n') : '';
}
