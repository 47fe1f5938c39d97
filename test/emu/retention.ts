/**
 * Bounded leftovers in the cache: each run writes a console log and an overlay initramfs; only the newest
 * few of each are kept, so a CI cache or a developer's machine does not grow by one log per test forever.
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

/** How many of each the emulated tier keeps. */
export const KEEP_LOGS = 40;
export const KEEP_OVERLAYS = 3;

/**
 * Deletes all but the `keep` newest entries of `dir` whose names match `pattern` (files or directories,
 * newest by modification time). A missing `dir` is fine. Returns the names deleted.
 */
export function keepNewest(dir: string, pattern: RegExp, keep: number): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => pattern.test(n));
  } catch {
    return [];
  }
  const byAge = names
    .map((name) => ({ name, mtime: statSync(path.join(dir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || (a.name < b.name ? 1 : -1));
  const doomed = byAge.slice(keep).map((e) => e.name);
  for (const name of doomed) rmSync(path.join(dir, name), { recursive: true, force: true });
  return doomed;
}
