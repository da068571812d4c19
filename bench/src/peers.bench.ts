/**
 * TopGun against its peers end to end (issue 17): two or three Node clients with memory
 * storage and a sync server in its own process, for TopGun (on PostgreSQL, acknowledging a
 * write after its COMMIT), Yjs (y-websocket's server), TinyBase (its WsServer) and
 * Automerge-repo (a server Repo over its WebSocket adapter), none of which persists anything.
 * Every measure on every system in the same run, `BENCH_ROUNDS` (3) rounds, medians reported.
 * Writes `results/peers.json` and the table in `bench/README.md`. `pnpm bench:peers`
 * (`BENCH_ONLY=<part of a system's name>` measures only those and writes nothing).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo, median } from './measure.js';
import { AutomergeSystem } from './peers/automerge.js';
import {
  type PeerClient,
  type PeerSystem,
  type Row,
  TinyBaseSystem,
  TopGunSystem,
  until,
  YjsSystem,
} from './peers/systems.js';
import { percentile, residentMiB } from './serverProcesses.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
/** 1 for the issue's sizes; less for a quick look. */
const SCALE = Number(process.env['BENCH_SCALE'] ?? 1);
const LATENCY_WRITES = Math.round(500 * SCALE);
const BURST = Math.round(10_000 * SCALE);
const INITIAL = Math.round(100_000 * SCALE);
const CHANGED = 100;
const MAPS = Math.round(1_000 * SCALE);
const PER_MAP = 100;
const EMPTY_CONNECTS = 20;

/**
 * TopGun's per-connection rate limits are raised (the peers' servers have none): one client
 * writes 100,000 records, or opens 1,000 maps, as fast as it can.
 */
const TOPGUN_LIMITS = {
  TOPGUN_LIMITS: JSON.stringify({
    opsPerSecond: 1_000_000,
    opsBurst: 1_000_000,
    bytesPerSecond: 1 << 30,
    bytesBurst: 1 << 30,
    mapLoadsPerSecond: 100_000,
    mapLoadsBurst: 100_000,
    upgradesPerSecond: 100_000,
    upgradesBurst: 100_000,
  }),
};

const rowOf = (n: number): Row => ({ n, text: `record ${n} of the benchmark` });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Write → remote client latency: one write every 10 ms, timed as each arrives. */
async function latency(system: PeerSystem): Promise<{ p50: number; p99: number }> {
  const writer = await system.client('latency');
  const reader = await system.client('latency');
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  reader.onChange(() => {
    const now = performance.now();
    for (const [key, at] of sentAt) {
      if (reader.get(key) === undefined) continue;
      latencies.push(now - at);
      sentAt.delete(key);
    }
  });
  for (let i = 0; i < LATENCY_WRITES; i++) {
    const key = `l${i}`;
    sentAt.set(key, performance.now());
    writer.write(key, rowOf(i));
    await sleep(10);
  }
  await until('every write seen', () => sentAt.size === 0, 30_000);
  await Promise.all([writer.close(), reader.close()]);
  // The first writes warm up connections and code paths.
  const measured = latencies.slice(Math.min(20, latencies.length >> 2)).sort((a, b) => a - b);
  return { p50: percentile(measured, 50), p99: percentile(measured, 99) };
}

/** 10,000 records written by one client as fast as it can, until the other holds them. */
async function burst(system: PeerSystem, batched: boolean): Promise<number> {
  const map = batched ? 'burst-batched' : 'burst';
  const writer = await system.client(map);
  const reader = await system.client(map);
  const started = performance.now();
  const rows = Array.from({ length: BURST }, (_, i) => [`b${i}`, rowOf(i)] as const);
  if (batched) writer.writeMany(rows);
  else for (const [key, row] of rows) writer.write(key, row);
  await until('the burst at the other client', () => reader.size >= BURST);
  const seconds = (performance.now() - started) / 1000;
  await Promise.all([writer.close(), reader.close()]);
  return BURST / seconds;
}

interface SyncFigures {
  initialMs: number;
  initialBytes: number;
  reconnectMs: number;
  reconnectBytes: number;
}

/** A fresh client's first sync of 100,000 records, then its reconnect after 100 changed. */
async function initialAndReconnect(system: PeerSystem): Promise<SyncFigures> {
  const writer = await system.client('large');
  for (let start = 0; start < INITIAL; start += 10_000) {
    const rows: Array<readonly [string, Row]> = [];
    for (let i = start; i < Math.min(INITIAL, start + 10_000); i++) rows.push([`r${i}`, rowOf(i)]);
    writer.writeMany(rows);
    await writer.settled();
  }
  // The server holds them all once a fresh client receives them all.
  const check = await system.client('large');
  await until('the records on the server', () => check.size >= INITIAL);
  await check.close();

  const started = performance.now();
  const fresh = await system.client('large');
  await until('the first sync', () => fresh.size >= INITIAL);
  const initialMs = performance.now() - started;
  const initialBytes = fresh.traffic.total;

  await fresh.goOffline();
  const changed: Array<readonly [string, Row]> = [];
  for (let i = 0; i < CHANGED; i++) {
    const n = Math.floor((i * INITIAL) / CHANGED);
    changed.push([`r${n}`, { n, text: `changed ${n}` }]);
  }
  writer.writeMany(changed);
  await writer.settled();
  await sleep(200);
  fresh.traffic.reset();
  const back = performance.now();
  await fresh.goOnline();
  await until('the changed records', () =>
    changed.every(([key, row]) => fresh.get(key)?.text === row.text),
  );
  const reconnectMs = performance.now() - back;
  const reconnectBytes = fresh.traffic.total;
  await Promise.all([writer.close(), fresh.close()]);
  return { initialMs, initialBytes, reconnectMs, reconnectBytes };
}

/** Connect and sync an empty map: median of 20 fresh clients. */
async function fixedCost(system: PeerSystem): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < EMPTY_CONNECTS; i++) {
    const started = performance.now();
    const client = await system.client(`empty-${i}`);
    times.push(performance.now() - started);
    await client.close();
  }
  return median(times.slice(2));
}

/** The server's resident memory once it holds 1,000 maps of 100 records (clients gone). */
async function manyMaps(system: PeerSystem): Promise<number> {
  const clients: PeerClient[] = [];
  for (let m = 0; m < MAPS; m += 50) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(50, MAPS - m) }, (_, i) => system.client(`map-${m + i}`)),
    );
    for (const client of opened) {
      client.writeMany(Array.from({ length: PER_MAP }, (_, i) => [`k${i}`, rowOf(i)] as const));
    }
    await Promise.all(opened.map((client) => client.settled()));
    clients.push(...opened);
  }
  await sleep(500);
  await Promise.all(clients.map((client) => client.close()));
  // Some of them, read back by fresh clients: the server holds them.
  for (const m of [0, Math.floor(MAPS / 2), MAPS - 1]) {
    const check = await system.client(`map-${m}`);
    await until(`map-${m} read back`, () => check.size >= PER_MAP);
    await check.close();
  }
  await sleep(2_000);
  return residentMiB(system.pid);
}

async function idleRss(system: PeerSystem): Promise<number> {
  await sleep(3_000);
  return residentMiB(system.pid);
}

interface Figures {
  [measure: string]: number;
}

/** Measures that failed, by system: reported, and left out of the medians. */
const failures: Array<{ system: string; round: number; measure: string; error: string }> = [];

async function measureAll(
  name: string,
  round: number,
  make: () => PeerSystem,
  only?: 'latency' | 'idle',
): Promise<Figures> {
  const figures: Figures = {};
  /** Runs one measure; one that fails is recorded as such and the others still run. */
  const attempt = async (measure: string, run: () => Promise<Figures>): Promise<void> => {
    try {
      Object.assign(figures, await run());
    } catch (error) {
      failures.push({ system: name, round, measure, error: (error as Error).message });
      console.error(`${name}, round ${round}: ${measure} failed: ${(error as Error).message}`);
    }
  };
  let system = make();
  await system.start();
  try {
    if (only !== 'latency') figures['idleRssMiB'] = await idleRss(system);
    if (only === 'idle') return figures;
    await attempt('latency', async () => {
      const { p50, p99 } = await latency(system);
      return { latencyP50Ms: p50, latencyP99Ms: p99 };
    });
    if (only === 'latency') return figures;
    await attempt('burst', async () => ({ burstPerSecond: await burst(system, false) }));
    await attempt('burst in one transaction', async () => ({
      burstBatchedPerSecond: await burst(system, true),
    }));
    await attempt('initial sync and reconnect', async () => ({
      ...(await initialAndReconnect(system)),
    }));
    await attempt('fixed cost', async () => ({ fixedCostMs: await fixedCost(system) }));
    // A fresh server for memory: what the measures above left behind does not count.
    await system.stop();
    system = make();
    await system.start();
    await attempt('many maps', async () => ({ manyMapsRssMiB: await manyMaps(system) }));
  } finally {
    await system.stop();
  }
  return figures;
}

/** Only the systems whose name holds this (a quick look: nothing is written then). */
const ONLY = process.env['BENCH_ONLY'];

const ALL_SYSTEMS: Array<[name: string, make: () => PeerSystem, only?: 'latency' | 'idle']> = [
  ['TopGun (PostgreSQL)', () => new TopGunSystem('TopGun', TOPGUN_LIMITS)],
  [
    'TopGun, fan-out window 0',
    () => new TopGunSystem('TopGun', { ...TOPGUN_LIMITS, TOPGUN_FANOUT_WINDOW_MS: '0' }),
    'latency',
  ],
  ['TopGun (PGlite default)', () => new TopGunSystem('TopGun', TOPGUN_LIMITS, true), 'idle'],
  ['Yjs + y-websocket', () => new YjsSystem()],
  ['TinyBase + WsServer', () => new TinyBaseSystem()],
  ['Automerge-repo', () => new AutomergeSystem()],
];
const SYSTEMS = ALL_SYSTEMS.filter(([name]) => ONLY === undefined || name.includes(ONLY));

const runs: Record<string, Figures[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, make, only] of SYSTEMS) {
    const figures = await measureAll(name, round, make, only);
    runs[name] = [...(runs[name] ?? []), figures];
    console.log(JSON.stringify({ round, name, figures }));
  }
}

const medians: Record<string, Figures> = {};
for (const [name, list] of Object.entries(runs)) {
  const keys = new Set(list.flatMap((figures) => Object.keys(figures)));
  medians[name] = Object.fromEntries(
    [...keys].map((key) => [
      key,
      median(list.flatMap((figures) => (figures[key] === undefined ? [] : [figures[key]]))),
    ]),
  );
}

if (ONLY !== undefined) {
  console.log(JSON.stringify({ medians, failures }, null, 1));
  process.exit(failures.length === 0 ? 0 : 1);
}

const topgun = medians['TopGun (PostgreSQL)']!;
const yjs = medians['Yjs + y-websocket']!;
const pglite = medians['TopGun (PGlite default)']!;
const targets = [
  {
    target: 'p50 write → remote client under 2× Yjs’s, acknowledging after COMMIT',
    met: topgun['latencyP50Ms']! < 2 * yjs['latencyP50Ms']!,
    value: `${round1(topgun['latencyP50Ms']!)} ms vs Yjs ${round1(yjs['latencyP50Ms']!)} ms`,
  },
  {
    target: 'reconnect after 100 of 100,000 changed within 2× Yjs’s bytes',
    met: topgun['reconnectBytes']! <= 2 * yjs['reconnectBytes']!,
    value: `${kib(topgun['reconnectBytes']!)} vs Yjs ${kib(yjs['reconnectBytes']!)}`,
  },
  {
    target: 'connect + hello + empty walk under 5 ms',
    met: topgun['fixedCostMs']! < 5,
    value: `${round1(topgun['fixedCostMs']!)} ms`,
  },
  {
    target: 'server RSS with 1,000 maps × 100 records within 1.5× Yjs’s',
    met: topgun['manyMapsRssMiB']! <= 1.5 * yjs['manyMapsRssMiB']!,
    value: `${Math.round(topgun['manyMapsRssMiB']!)} MiB vs Yjs ${Math.round(yjs['manyMapsRssMiB']!)} MiB`,
  },
  {
    target: 'idle RSS with the embedded PGlite default under 200 MiB',
    met: pglite['idleRssMiB']! < 200,
    value: `${Math.round(pglite['idleRssMiB']!)} MiB`,
  },
];

const caveats = [
  'TopGun acknowledges a write after PostgreSQL COMMIT; the servers of Yjs, TinyBase and Automerge-repo keep everything in memory and persist nothing (no acknowledgement at all: their clients send and forget).',
  'TopGun runs on a PostgreSQL server of this machine (2 cores shared by the database, the server and the clients); its per-connection rate limits are raised for the bench, the peers have none.',
  'Clients are Node processes with memory storage (no IndexedDB), all in the benchmark process; bytes are WebSocket message payloads as the client sends and receives them.',
  'Yjs writes a JSON object per key of one Y.Map; TinyBase a row of two cells; Automerge an object per key of the document’s `rows`; TopGun a record { n, text }.',
  'TinyBase’s server keeps each path’s content in a Map between clients (a memory persister), so a fresh client is served what others wrote before it came, as by the others; its clients of the 100,000-row path wait up to 120 s for an answer to a request (TinyBase’s default, 1 s, is too short for it and leaves the sync incomplete); its fixed cost is that default timeout, which a client of an empty path waits out.',
  'Automerge-repo 2.5.6 with its WebSocket adapters: a server Repo without storage that announces nothing (as its sync server runs), each client a Repo of its own, one document per map holding a `rows` object. A client sends a document’s changes at most every 100 ms (the repo’s sync throttle, which its Repo options do not set), and so does the server to the other clients: that sets its latency and per-call burst. Its clients count as settled once the server’s last sync message has their heads.',
  `Sizes: latency ${LATENCY_WRITES} writes 10 ms apart (first 20 dropped), burst ${BURST.toLocaleString('en')} records, initial sync ${INITIAL.toLocaleString('en')}, reconnect after ${CHANGED} changed, ${MAPS.toLocaleString('en')} maps × ${PER_MAP}; medians of ${ROUNDS} rounds.`,
];

const here = dirname(fileURLToPath(import.meta.url));
writeFileSync(
  join(here, '..', 'results', 'peers.json'),
  `${JSON.stringify({ what: 'TopGun against Yjs, TinyBase and Automerge-repo end to end: two Node clients and a server process', machine: machineInfo(), caveats, medians, targets, failures, runs }, null, 2)}\n`,
);
writeReadme();
console.log(JSON.stringify(medians, null, 1));
console.log(JSON.stringify(targets, null, 1));

function round1(value: number): string {
  return (Math.round(value * 10) / 10).toLocaleString('en');
}

function kib(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / 2 ** 20).toFixed(1)} MiB`
    : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** The results table and latency chart in bench/README.md, between its markers. */
function writeReadme(): void {
  const path = join(here, '..', 'README.md');
  const text = readFileSync(path, 'utf8');
  const start = '<!-- peers:start -->';
  const end = '<!-- peers:end -->';
  const names = [
    'TopGun (PostgreSQL)',
    'Yjs + y-websocket',
    'TinyBase + WsServer',
    'Automerge-repo',
  ];
  const cell = (name: string, key: string, format: (value: number) => string) =>
    medians[name]?.[key] === undefined ? 'failed' : format(medians[name]![key]!);
  const rows: Array<[string, (name: string) => string]> = [
    [
      'write → remote client, 1 write / 10 ms: p50 / p99',
      (n) => `${cell(n, 'latencyP50Ms', round1)} / ${cell(n, 'latencyP99Ms', round1)} ms`,
    ],
    [
      '10,000 records A → B, one call each',
      (n) => `${cell(n, 'burstPerSecond', (v) => `${Math.round(v / 1000)}k`)} records/s`,
    ],
    [
      '10,000 records A → B, one transaction',
      (n) => `${cell(n, 'burstBatchedPerSecond', (v) => `${Math.round(v / 1000)}k`)} records/s`,
    ],
    [
      'initial sync of 100,000 records',
      (n) =>
        `${cell(n, 'initialMs', (v) => `${(v / 1000).toFixed(2)} s`)}, ${cell(n, 'initialBytes', kib)}`,
    ],
    [
      'reconnect after 100 of 100,000 changed',
      (n) =>
        `${cell(n, 'reconnectMs', (v) => `${Math.round(v)} ms`)}, ${cell(n, 'reconnectBytes', kib)}`,
    ],
    ['fixed cost: connect and sync an empty map', (n) => `${cell(n, 'fixedCostMs', round1)} ms`],
    [
      'server RSS, 1,000 maps × 100 records',
      (n) => `${cell(n, 'manyMapsRssMiB', (v) => String(Math.round(v)))} MiB`,
    ],
    ['server RSS idle', (n) => `${cell(n, 'idleRssMiB', (v) => String(Math.round(v)))} MiB`],
  ];
  const window0 = medians['TopGun, fan-out window 0'];
  const lines = [
    start,
    `Measured ${new Date().toISOString().slice(0, 10)} on this machine (${machineInfo().cpu}, ${machineInfo().cores} cores), medians of ${ROUNDS}; \`pnpm bench:peers\`, raw figures in \`results/peers.json\`.`,
    '',
    `| measure | ${names.join(' | ')} |`,
    `|---|${names.map(() => '---').join('|')}|`,
    ...rows.map(([label, of]) => `| ${label} | ${names.map(of).join(' | ')} |`),
    '',
    `TopGun with its fan-out window set to 0: p50 / p99 ${round1(window0?.['latencyP50Ms'] ?? Number.NaN)} / ${round1(window0?.['latencyP99Ms'] ?? Number.NaN)} ms. Its embedded PGlite default idles at ${Math.round(pglite['idleRssMiB']!)} MiB.`,
    '',
    'p50 write → remote client latency (ms):',
    '',
    '```',
    ...names.map((name) => {
      const value = medians[name]?.['latencyP50Ms'] ?? 0;
      return `${name.padEnd(22)} ${'█'.repeat(Math.max(1, Math.round(value * 4)))} ${round1(value)}`;
    }),
    '```',
    '',
    'Targets:',
    '',
    ...targets.map(
      ({ target, met, value }) => `- ${met ? 'met' : '**not met**'}: ${target} (${value})`,
    ),
    '',
    'Caveats:',
    '',
    ...caveats.map((caveat) => `- ${caveat}`),
    ...(failures.length === 0
      ? []
      : [
          '',
          'Measures that failed (left out of the medians):',
          '',
          ...failures.map(
            ({ system, round, measure, error }) =>
              `- ${system}, round ${round + 1}, ${measure}: ${error}`,
          ),
        ]),
    end,
  ];
  const before = text.includes(start)
    ? text.slice(0, text.indexOf(start))
    : `${text.trimEnd()}\n\n`;
  const after = text.includes(end) ? text.slice(text.indexOf(end) + end.length) : '\n';
  writeFileSync(path, `${before}${lines.join('\n')}${after}`);
}
