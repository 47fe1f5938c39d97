/**
 * The mapper formats its per-mapping detail messages only when someone reads them (mapperLog().enabled):
 * an injected logger, or NODE_DEBUG=vfio-bars (checked in a child process against the built dist/).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { debuglog } from 'node:util';
import { expect, it } from 'vitest';
import { mapperLog } from '../../src/map/logger.js';

const quiet = { debug: (): void => undefined, info: (): void => undefined, warn: (): void => undefined };

it('enabled: with an injected logger always; without one, exactly when NODE_DEBUG names vfio-bars', () => {
  expect(mapperLog(quiet).enabled).toBe(true);
  expect(mapperLog(undefined).enabled).toBe(debuglog('vfio-bars').enabled);
  const logger = path.resolve(import.meta.dirname, '..', '..', 'dist', 'map', 'logger.js');
  const script = `const { mapperLog } = await import(${JSON.stringify(logger)}); console.log(mapperLog(undefined).enabled);`;
  const run = (nodeDebug: string): string => execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8', env: { ...process.env, NODE_DEBUG: nodeDebug },
  }).trim();
  expect(run('vfio-bars')).toBe('true');
  expect(run('other')).toBe('false');
});
