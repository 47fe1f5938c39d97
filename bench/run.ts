/**
 * `npm run bench`: runs every case, prints the table, writes bench/results.json and the README's
 * performance section. Compiled by tsconfig.bench.json to bench/.out/ (run from there).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { runBench } from './bench.js';
import { markdownTable, updateReadme } from './report.js';

// bench/.out/run.js → the repository root is two levels up.
const root = path.resolve(import.meta.dirname, '..', '..');
const bench = path.join(root, 'bench');
const results = await runBench({
  scale: 1, rounds: 9, sourceDir: bench, importEntry: path.join(root, 'dist', 'index.js'),
  log: (line) => console.error(line),
});
writeFileSync(path.join(bench, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
updateReadme(path.join(root, 'README.md'), results);
console.log(markdownTable(results));
