/**
 * Live-query benchmark: 10 000 records, a query with `where`, a two-field sort and
 * `limit 50`; random updates applied to the incremental maintainer (`LiveQuery`) against
 * re-running `evaluateQuery` after each change. Writes `results/query.json`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluateQuery, HLC, LiveQuery, LWWMap, type Query } from '@topgun/core';
import { formatRate, machineInfo, medianMs } from './measure.js';

interface Task {
  title: string;
  done: boolean;
  priority: number;
  updatedAt: number;
}

const RECORDS = 10_000;
const CHANGES = 200_000;
const NAIVE_CHANGES = 300;
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);

/** Deterministic pseudo-random numbers (mulberry32), so every run applies the same changes. */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const next = random(42);
const task = (i: number): Task => ({
  title: `Task ${i}`,
  done: next() < 0.5,
  priority: Math.floor(next() * 5),
  updatedAt: Math.floor(next() * 1_000_000),
});
const initial: Array<[string, Task]> = Array.from({ length: RECORDS }, (_, i) => [
  `task-${i}`,
  task(i),
]);
const changes = Array.from({ length: CHANGES }, () => {
  const index = Math.floor(next() * RECORDS);
  return { key: `task-${index}`, value: task(index) };
});
const query: Query<Task> = {
  where: { done: false },
  sort: [
    { field: 'priority', direction: 'desc' },
    { field: 'updatedAt', direction: 'desc' },
  ],
  limit: 50,
};

let visibleChanges = 0;
const liveMs = medianMs(ROUNDS, () => {
  const live = new LiveQuery(query, initial);
  visibleChanges = 0;
  for (const change of changes) if (live.apply(change).changed) visibleChanges++;
});
const liveRate = CHANGES / (liveMs / 1000);

// The same changes through an LWW map and its change listener (the client's real path).
const throughMapMs = medianMs(ROUNDS, () => {
  const map = new LWWMap<Task>(new HLC({ nodeId: 'bench' }));
  for (const [key, value] of initial) map.set(key, value);
  const live = new LiveQuery(query, map.entries());
  map.subscribe((change) => live.apply(change));
  const start = performance.now();
  for (const change of changes) map.set(change.key, change.value);
  return performance.now() - start;
});
const throughMapRate = CHANGES / (throughMapMs / 1000);

const naiveMs = medianMs(Math.min(ROUNDS, 3), () => {
  const state = new Map(initial);
  for (let i = 0; i < NAIVE_CHANGES; i++) {
    const change = changes[i]!;
    state.set(change.key, change.value);
    evaluateQuery(query, state);
  }
});
const naiveRate = NAIVE_CHANGES / (naiveMs / 1000);

const rows = [
  { workload: 'LiveQuery.apply', value: liveRate, unit: 'changes/s' },
  {
    workload: 'LWWMap.set + LiveQuery via subscribe (incl. initial load)',
    value: throughMapRate,
    unit: 'changes/s',
  },
  { workload: 'evaluateQuery after every change', value: naiveRate, unit: 'changes/s' },
];
for (const row of rows) console.log(`${row.workload.padEnd(60)} ${formatRate(row.value)}`);
const speedup = liveRate / naiveRate;
console.log(`visible result changes: ${visibleChanges} of ${CHANGES}`);
const targets = [
  {
    target: 'live query >= 200,000 changes/s',
    met: liveRate >= 200_000,
    value: formatRate(liveRate),
  },
  {
    target: 'live query >= 20x evaluateQuery per change',
    met: speedup >= 20,
    value: `${speedup.toFixed(0)}x`,
  },
];
console.log('\nTargets:');
for (const { target, met, value } of targets)
  console.log(`  ${met ? 'MET    ' : 'NOT MET'} ${target.padEnd(44)} ${value}`);

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'query.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ machine: machineInfo(), records: RECORDS, changes: CHANGES, query, visibleChanges, rows, speedup, targets }, null, 2)}\n`,
);
console.log(`\nwrote ${out}`);
