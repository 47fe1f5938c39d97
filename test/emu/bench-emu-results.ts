/**
 * bench/emu-results.json holds the two parts of `npm run bench:emu`, each written by its own run file: the nested
 * guests (bench-emu.run.ts, top-level fields) and the huge-PFN measurement (bench-emu-huge-pfn.run.ts, `hugePfn`).
 * Each run merges its part into what is there and regenerates the README's marked section from the merged file,
 * so running one part never drops the other's figures.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hugePfnSection, type HugePfnBench } from './bench-emu-huge-pfn.js';
import { nestedSection, replaceReadmeSection, type NestedBenchResults } from './bench-emu-table.js';

/** The whole file: either part may be missing (never run yet). */
export type BenchEmuResults = Partial<NestedBenchResults> & { hugePfn?: HugePfnBench };

/** The README section for whatever parts the results hold, nested guests first. */
export function benchEmuSection(results: BenchEmuResults): string {
  const { hugePfn, ...nested } = results;
  const parts: string[] = [];
  if (nested.runs && nested.date && nested.nestedQemu !== undefined && nested.outerSeconds !== undefined) {
    parts.push(nestedSection(nested as NestedBenchResults));
  }
  if (hugePfn) parts.push(hugePfnSection(hugePfn));
  return parts.join('\n\n');
}

/** Merges `update` into `results` (the parts it carries replace the old ones; the others stay). */
export function mergeBenchEmuResults(results: BenchEmuResults, update: BenchEmuResults): BenchEmuResults {
  return { ...results, ...update };
}

/** Reads bench/emu-results.json, merges `update`, writes it back and regenerates the README's bench:emu section. */
export function saveBenchEmuResults(repo: string, update: BenchEmuResults): BenchEmuResults {
  const file = path.join(repo, 'bench', 'emu-results.json');
  const old = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as BenchEmuResults) : {};
  const merged = mergeBenchEmuResults(old, update);
  writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
  const readme = path.join(repo, 'README.md');
  writeFileSync(readme, replaceReadmeSection(readFileSync(readme, 'utf8'), benchEmuSection(merged)));
  return merged;
}
