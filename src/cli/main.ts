#!/usr/bin/env node
/** The `vfio-bars` command. Exit codes: 0 ok, 1 mapping failed, 2 usage error. */
import { debuglog } from 'node:util';
import { VfioBarsError } from '../index.js';
import { PROFILES } from './profiles.js';
import { planCommand } from './commands/plan.js';
import { inspectCommand } from './commands/inspect.js';
import { mapCommand } from './commands/map.js';
import { USAGE, UsageError } from './usage.js';

const debug = debuglog('vfio-bars');

export function run(argv: string[]): { output: string; exitCode: number } {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'plan':
        return { output: planCommand(args), exitCode: 0 };
      case 'inspect':
        return { output: inspectCommand(args), exitCode: 0 };
      case 'map': {
        const { output, ok } = mapCommand(args);
        return { output, exitCode: ok ? 0 : 1 };
      }
      case 'profiles':
        return { output: Object.entries(PROFILES).map(([name, p]) => `${name.padEnd(20)} ${p.summary}`).join('\n'), exitCode: 0 };
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return { output: USAGE, exitCode: command === undefined ? 2 : 0 };
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    debug('%s', error instanceof Error ? error.stack : String(error));
    return { output: describeError(error), exitCode: isUsageError(error) ? 2 : 1 };
  }
}

/** parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for bad options. */
function isUsageError(error: unknown): boolean {
  return error instanceof UsageError || (error instanceof Error && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS'));
}

function describeError(error: unknown): string {
  if (error instanceof UsageError) return `vfio-bars: ${error.message}\n\n${USAGE}`;
  if (isUsageError(error)) return `vfio-bars: ${(error as Error).message}\n\n${USAGE}`;
  if (error instanceof VfioBarsError) return `vfio-bars: ${error.name} ${error.code}: ${error.message}`;
  return `vfio-bars: ${error instanceof Error ? error.message : String(error)}`;
}

// Run only as the program, not when imported by tests.
if (process.argv[1] && import.meta.url === new URL(`file://${(await import('node:fs')).realpathSync(process.argv[1])}`).href) {
  const { output, exitCode } = run(process.argv.slice(2));
  (exitCode === 0 ? process.stdout : process.stderr).write(`${output}\n`);
  process.exitCode = exitCode;
}
