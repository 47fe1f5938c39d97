/**
 * The `vfio-bars` command (bin/vfio-bars.js runs `main`). Exit codes: 0 ok, 1 failed (device, kernel,
 * verification), 2 usage error. `run` is the same without a process: tests call it with stand-ins.
 */
import { createRequire } from 'node:module';
import { debuglog } from 'node:util';
import { VfioBarsError } from '../index.js';
import { describeCommand } from './commands/describe.js';
import { inspectCommand } from './commands/inspect.js';
import { mapCommand } from './commands/map.js';
import { planCommand } from './commands/plan.js';
import { defaultEnvironment, type CliEnvironment } from './environment.js';
import { PROFILE_SUMMARIES } from './profiles.js';
import { COMMAND_USAGE, USAGE, UsageError, quote, usageFor } from './usage.js';

const debug = debuglog('vfio-bars');

/** Longest error message printed: a library message that quotes a huge input is cut here as a last resort. */
const MAX_MESSAGE = 500;

/** What a command produced: the text, where it goes, and the exit code. */
export interface CliResult {
  readonly output: string;
  readonly exitCode: 0 | 1 | 2;
  /** stdout for results (also a failed verification's report), stderr for errors and the usage after them. */
  readonly stream: 'stdout' | 'stderr';
}

/** `vfio-bars 0.1.0`, from the package.json next to src/ or dist/. */
export function versionText(): string {
  const require = createRequire(import.meta.url);
  const { version } = require('../../package.json') as { version: string };
  return `vfio-bars ${version}`;
}

function profilesText(): string {
  return Object.entries(PROFILE_SUMMARIES).map(([name, summary]) => `${name.padEnd(20)} ${summary}`).join('\n');
}

function ok(output: string): CliResult {
  return { output, exitCode: 0, stream: 'stdout' };
}

function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

function dispatch(command: string | undefined, args: string[], env: CliEnvironment): CliResult {
  if (command !== undefined && Object.hasOwn(COMMAND_USAGE, command) && wantsHelp(args)) return ok(COMMAND_USAGE[command]!);
  switch (command) {
    case 'plan':
      return ok(planCommand(args, env));
    case 'describe':
      return ok(describeCommand(args, env));
    case 'inspect':
      return ok(inspectCommand(args, env));
    case 'map': {
      const { output, ok: passed } = mapCommand(args, env);
      return { output, exitCode: passed ? 0 : 1, stream: 'stdout' };
    }
    case 'profiles':
      if (args.length > 0) throw new UsageError('profiles takes no arguments');
      return ok(profilesText());
    case 'help':
      return ok(usageFor(args[0]));
    case '--help':
    case '-h':
      return ok(USAGE);
    case '--version':
    case '-V':
      return ok(versionText());
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command ${quote(command)}`);
  }
}

/**
 * Runs one command line (without `node` and the script) and returns its output and exit code.
 * @example
 * ```ts
 * const { output, exitCode } = run(['plan', '--profile', 'qemu-nvme', '--page-size', '64K']);
 * ```
 */
export function run(argv: readonly string[], env: CliEnvironment = defaultEnvironment()): CliResult {
  const [command, ...args] = argv;
  try {
    return dispatch(command, args, env);
  } catch (error) {
    env.progress.done();
    debug('%s', error instanceof Error ? error.stack : String(error));
    const usage = error instanceof UsageError || isParseArgsError(error);
    return { output: describeError(error, usage ? usageFor(command) : undefined), exitCode: usage ? 2 : 1, stream: 'stderr' };
  }
}

/** node:util parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown options and missing values. */
function isParseArgsError(error: unknown): boolean {
  return error instanceof Error && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS');
}

function cut(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE)}... (message cut, ${message.length} characters)`;
}

/** One line naming the error (class and code for the library's typed errors), then the usage for usage errors. */
function describeError(error: unknown, usage: string | undefined): string {
  const message = cut(error instanceof Error ? error.message : String(error));
  if (usage !== undefined) {
    const code = error instanceof UsageError && error.code !== 'USAGE' ? `${error.code}: ` : '';
    return `vfio-bars: ${code}${message}\n\n${usage}`;
  }
  if (error instanceof VfioBarsError) return `vfio-bars: ${error.name} ${error.code}: ${message}`;
  return `vfio-bars: ${message}`;
}

/** The program: runs `process.argv`, prints to stdout or stderr, sets the exit code. */
export function main(argv: readonly string[] = process.argv.slice(2)): void {
  const { output, exitCode, stream } = run(argv);
  (stream === 'stdout' ? process.stdout : process.stderr).write(`${output}\n`);
  process.exitCode = exitCode;
}
