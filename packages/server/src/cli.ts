#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';

// V8 settings for a server whose heap is mostly a large, long-lived grid, applied before
// anything else is loaded, unless the same flag was given to node explicitly (the runs that
// chose them are in the commit that added them; latency under load: bench/results/server.json):
// - Without allocation-site pretenuring: under load, a commit that waits a little keeps the
//   objects of its batches alive across a young-generation collection, and V8 would then
//   allocate every later object of those sites (decoded messages, per-op records of a group)
//   directly in old space, where they die soon after, costing full collections.
// - Old space may grow to 4x what the last full collection kept before the next one starts
//   (V8 picks 1.1x to 4x on its own): full collections come less often, and concurrent
//   marking has more room to finish before the main thread must help. Memory for latency:
//   lower it, e.g. `node --heap-growing-percent=100 dist/cli.js`, where memory is tight.
// - On the embedded PGlite (no DATABASE_URL), its WebAssembly runs on V8's baseline compiler
//   only: the optimizing tier's code for PostgreSQL's hot functions and the memory its
//   compiles leave behind are 40–60 MB of resident memory, about a third of an idle server's,
//   for queries 5–30% faster once warm (bench/README.md, "server RSS idle").
//   `node --no-liftoff-only dist/cli.js` keeps the optimizing tier.
const TUNING = ['--no-allocation-site-pretenuring', '--heap-growing-percent=300'];
if (process.env['DATABASE_URL'] === undefined) TUNING.push('--liftoff-only');
const flagName = (flag: string) => flag.replace(/^--(no-)?/, '').split('=')[0];
const given = new Set(process.execArgv.map(flagName));
for (const flag of TUNING) if (!given.has(flagName(flag))) setFlagsFromString(flag);

const { serve } = await import('./serve.js');
serve().catch((error) => {
  console.error('topgun-server failed to start:', error);
  process.exit(1);
});
