/**
 * Live aggregates in core (issue 16): `BENCH_RECORDS` todos (default 1,000,000) followed by
 * ten aggregate subscriptions a dashboard would hold (counts by two keys, a one-minute
 * completions chart, least and greatest values, sums and averages, the top ten people).
 * Measures building them, then record changes applied to all ten (changes per second
 * sustained: 35% ticks and unticks, 25% title edits, 10% points, 10% owners, 15% new todos,
 * 5% deletions; each aggregate's delta read every 100 changes), against evaluating all ten from scratch per change; median of
 * `BENCH_ROUNDS` (default 3). Writes `results/aggregates.json` (its `core` part).
 * `pnpm bench:aggregates`
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AggregateQuery,
  evaluateAggregate,
  LiveAggregate,
  type LWWRecord,
} from '@topgun/core';
import { machineInfo, median } from './measure.js';

interface Todo {
  title: string;
  owner: string;
  team: string;
  done: boolean;
  points: number;
  completedAt: number | null;
  kind: string;
}

const RECORDS = Number(process.env['BENCH_RECORDS'] ?? 1_000_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const CHANGES = Number(process.env['BENCH_CHANGES'] ?? 200_000);
const DAY = 86_400_000;

/** A deterministic pseudo-random stream (xorshift), so every round sees the same data. */
function random(seed: number) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

function todoOf(next: () => number): Todo {
  const done = next() < 0.6;
  return {
    title: `todo ${Math.floor(next() * 1e9)}`,
    owner: `person${Math.floor(next() * 1000)}`,
    team: `team${Math.floor(next() * 20)}`,
    done,
    points: Math.floor(next() * 13),
    completedAt: done ? Math.floor(next() * DAY) : null,
    kind: ['bug', 'feature', 'chore'][Math.floor(next() * 3)]!,
  };
}

const DASHBOARD: Array<[string, AggregateQuery<Todo>]> = [
  ['open vs done', { groupBy: { done: 'done' }, aggregate: { n: 'count' } }],
  [
    'by team and state',
    {
      groupBy: { team: 'team', done: 'done' },
      aggregate: { n: 'count', points: { sum: 'points' } },
    },
  ],
  [
    'completions per minute',
    {
      where: { done: true },
      groupBy: { minute: { field: 'completedAt', bucket: '1m' } },
      aggregate: { n: 'count' },
    },
  ],
  [
    'completions per hour by kind',
    {
      where: { done: true },
      groupBy: { hour: { field: 'completedAt', bucket: '1h' }, kind: 'kind' },
      aggregate: { n: 'count', points: { sum: 'points' } },
    },
  ],
  [
    'points range by owner',
    {
      groupBy: { owner: 'owner' },
      aggregate: { least: { min: 'points' }, most: { max: 'points' } },
    },
  ],
  [
    'first and last completion',
    {
      where: { done: true },
      aggregate: { first: { min: 'completedAt' }, last: { max: 'completedAt' } },
    },
  ],
  ['average points by kind', { groupBy: { kind: 'kind' }, aggregate: { mean: { avg: 'points' } } }],
  [
    'top 10 people by open work',
    {
      where: { done: false },
      groupBy: { owner: 'owner' },
      aggregate: { open: 'count', points: { sum: 'points' } },
      sort: [{ field: 'open', direction: 'desc' }],
      limit: 10,
    },
  ],
  ['total', { aggregate: { n: 'count', points: { sum: 'points' }, mean: { avg: 'points' } } }],
  [
    'latest completion by team',
    {
      where: { done: true },
      groupBy: { team: 'team' },
      aggregate: { last: { max: 'completedAt' } },
    },
  ],
];

const STAMP = { millis: 1, counter: 0, nodeId: 'bench' };

function recordOf(value: Todo | null): LWWRecord<Todo> {
  return { value, timestamp: STAMP };
}

function* recordsOf(values: Map<string, Todo>): Generator<[string, LWWRecord<Todo>]> {
  for (const [key, value] of values) yield [key, recordOf(value)];
}

interface Round {
  buildMs: number;
  changesPerSecond: number;
  fromScratchMsPerChange: number;
  heapMiB: number;
}

function round(seed: number): Round {
  const next = random(seed);
  const records = new Map<string, Todo>();
  for (let i = 0; i < RECORDS; i++) records.set(`t${i}`, todoOf(next));
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const buildStart = performance.now();
  const live = DASHBOARD.map(([, query]) => new LiveAggregate(query, recordsOf(records)));
  const buildMs = performance.now() - buildStart;
  globalThis.gc?.();
  const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;

  // Changes as a team makes them: ticks and unticks, edits of a title, of points, of the
  // owner, new todos, deletions.
  let created = RECORDS;
  const shadow = new Map(records);
  const changes = Array.from({ length: CHANGES }, () => {
    const change = changeOf();
    if (change.value === undefined) shadow.delete(change.key);
    else shadow.set(change.key, change.value);
    return change;
  });
  function changeOf(): { key: string; value: Todo | undefined } {
    const roll = next();
    if (roll < 0.15) return { key: `t${created++}`, value: todoOf(next) };
    const key = `t${Math.floor(next() * created)}`;
    const todo = shadow.get(key);
    if (roll < 0.2 || todo === undefined) return { key, value: undefined };
    if (roll < 0.55) {
      const done = !todo.done;
      return { key, value: { ...todo, done, completedAt: done ? Math.floor(next() * DAY) : null } };
    }
    if (roll < 0.8) return { key, value: { ...todo, title: `${todo.title}!` } };
    if (roll < 0.9) return { key, value: { ...todo, points: Math.floor(next() * 13) } };
    const owner = Math.floor(next() * 1000);
    return { key, value: { ...todo, owner: `person${owner}`, team: `team${owner % 20}` } };
  }
  // Read as a server flushes a tick's changes, or a page renders a frame: every 100 changes,
  // each aggregate's delta (what would be pushed or rendered).
  // As a map tells them: the record before and after (a tombstone for a deletion).
  const current = new Map(recordsOf(records));
  const changesTold = changes.map(({ key, value }) => {
    const record = recordOf(value ?? null);
    const change = { key, record, previousRecord: current.get(key) };
    current.set(key, record);
    return change;
  });
  const start = performance.now();
  let told = 0;
  for (let index = 0; index < changes.length; index++) {
    const { key, value } = changes[index]!;
    if (value === undefined) records.delete(key);
    else records.set(key, value);
    const change = changesTold[index]!;
    for (const aggregate of live) aggregate.apply(change);
    if (index % 100 === 99) for (const aggregate of live) told += aggregate.delta().updated.length;
  }
  const changesPerSecond = CHANGES / ((performance.now() - start) / 1000);
  if (told === 0) throw new Error('no delta told a change');

  // From scratch: all ten evaluated again after a change, a few times.
  const scratchStart = performance.now();
  const scratchRounds = 2;
  for (let i = 0; i < scratchRounds; i++) {
    records.set('t0', todoOf(next));
    for (const [, query] of DASHBOARD) evaluateAggregate(query, records);
  }
  const fromScratchMsPerChange = (performance.now() - scratchStart) / scratchRounds;
  // The live results still equal a fresh evaluation.
  const t0 = { key: 't0', record: recordOf(records.get('t0')!), previousRecord: current.get('t0') };
  DASHBOARD.forEach(([name, query], index) => {
    live[index]!.apply(t0);
    if (JSON.stringify(live[index]!.rows) !== JSON.stringify(evaluateAggregate(query, records)))
      throw new Error(`${name}: the live result differs from a fresh evaluation`);
  });
  return { buildMs, changesPerSecond, fromScratchMsPerChange, heapMiB };
}

const rounds: Round[] = [];
for (let n = 0; n < ROUNDS; n++) {
  rounds.push(round(n + 1));
  console.log(JSON.stringify(rounds.at(-1)));
}
const mid = (pick: (each: Round) => number) => median(rounds.map(pick));
const changesPerSecond = mid((r) => r.changesPerSecond);
const fromScratchMs = mid((r) => r.fromScratchMsPerChange);
const speedup = fromScratchMs / (1000 / changesPerSecond);
const core = {
  what: `${RECORDS.toLocaleString('en')} todos, the ten aggregates of a dashboard live (LiveAggregate): record changes (35% ticks and unticks, 25% title edits, 10% points, 10% owners, 15% new todos, 5% deletions) applied to all ten, each one's delta read every 100 changes, against evaluating all ten from scratch (evaluateAggregate) per change`,
  machine: machineInfo(),
  records: RECORDS,
  changes: CHANGES,
  rounds: ROUNDS,
  aggregates: DASHBOARD.map(([name, query]) => ({ name, query })),
  median: {
    buildAllMs: Math.round(mid((r) => r.buildMs)),
    heapMiB: Math.round(mid((r) => r.heapMiB)),
    changesPerSecond: Math.round(changesPerSecond),
    fromScratchMsPerChange: Math.round(fromScratchMs),
    speedup: Math.round(speedup),
  },
  runs: rounds.map((r) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)])),
  ),
  targets: [
    {
      target: 'at least 200,000 changes/s sustained across the ten aggregates',
      met: changesPerSecond >= 200_000,
      value: `${Math.round(changesPerSecond).toLocaleString('en')} changes/s`,
    },
    {
      target: 'at least 1,000 times faster than evaluating from scratch per change',
      met: speedup >= 1000,
      value: `${Math.round(speedup).toLocaleString('en')}×`,
    },
  ],
};
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'aggregates.json');
mkdirSync(dirname(out), { recursive: true });
const previous = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as object) : {};
writeFileSync(out, `${JSON.stringify({ ...previous, core }, null, 2)}\n`);
console.log(JSON.stringify(core.median), JSON.stringify(core.targets));
