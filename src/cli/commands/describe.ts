/** `vfio-bars describe BDF [--out FILE]`: the DeviceDescription JSON that `plan --description` reads. */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { descriptionToJSON } from '../../index.js'; // the public API only
import type { CliEnvironment } from '../environment.js';
import { openVfioDevice } from '../open-device.js';
import { CliError } from '../cli-error.js';
import { parseBdfArgument, parseIommu, quote } from '../usage.js';

const OPTIONS = {
  out: { type: 'string' },
  iommu: { type: 'string' },
} as const;

/**
 * `vfio-bars describe BDF [--out FILE]`: the description JSON itself, or a line saying where it was written.
 * @throws {UsageError} for bad options; VfioError when the device cannot be opened; CliError OUT_UNWRITABLE.
 */
export function describeCommand(args: string[], env: CliEnvironment): string {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  const bdf = parseBdfArgument('describe', positionals);
  const iommu = parseIommu(values.iommu);
  let json: string;
  {
    using device = openVfioDevice(env, bdf, iommu);
    env.progress.step(`describing ${bdf}`);
    json = `${JSON.stringify(descriptionToJSON(device.describe()), null, 2)}\n`;
  }
  env.progress.done();
  if (values.out === undefined) return json.trimEnd();
  writeDescription(values.out, json);
  return `wrote the description of ${bdf} to ${values.out} (vfio-bars plan --description ${values.out})`;
}

function writeDescription(file: string, json: string): void {
  try {
    writeFileSync(file, json);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new CliError(`--out ${quote(file)}: cannot write it (${code})`, 'OUT_UNWRITABLE', { cause: error });
  }
}
