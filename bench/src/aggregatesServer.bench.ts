/**
 * Server-side live aggregates, issue 16's server bench: a server process over PostgreSQL
 * holding `BENCH_RECORDS` (default 200,000) todos in map `todos`; `BENCH_DASHBOARDS` (100)
 * connections each subscribe to a dashboard's aggregates of the map (counts by state, the top
 * 10 people by open work, completions per minute over the last hour) while `BENCH_WRITERS`
 * (4) connections write `BENCH_RATE` (10,000) ops per second, open loop, ticking and
 * unticking todos.
 *
 * Latency: each writer's batch also writes a marker record (its writer and a sequence
 * number), and every dashboard follows one more aggregate, the greatest sequence number per
 * writer. A dashboard's update that shows a batch's number has that batch counted. From the
 * batch's ack (the writer learns its COMMIT) to that update, per dashboard and batch, is
 * "commit → dashboard" (a lower bound: the ack itself takes a moment to arrive); from the
 * batch being sent to that update is "write → dashboard" (an upper bound). Medians of
 * `BENCH_ROUNDS` (3) rounds of `BENCH_SECONDS` (10) s, each on a fresh server and database.
 * At the end of each round a whole-map client checks the dashboards' figures against a
 * fresh evaluation. Writes `results/aggregates-server.json`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@topgun/client';
import {
  type AggregateQuery,
  type AggregateRow,
  encodeMessage,
  evaluateAggregate,
  HLC,
  type Message,
  PROTOCOL_VERSION,
  toWireEntry,
  type Value,
} from '@topgun/core';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';
import { machineInfo, median } from './measure.js';
import {
  cpuSeconds,
  createDatabase,
  dropDatabase,
  percentile,
  residentMiB,
  seedDatabase,
  startServer,
  stopServer,
} from './serverProcesses.js';

const RECORDS = Number(process.env['BENCH_RECORDS'] ?? 200_000);
const DASHBOARDS = Number(process.env['BENCH_DASHBOARDS'] ?? 100);
const WRITERS = Number(process.env['BENCH_WRITERS'] ?? 4);
const RATE = Number(process.env['BENCH_RATE'] ?? 10_000);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
/** Batches per second per writer. */
const BATCHES_PER_SECOND = 50;
const WARMUP_S = 2;
const here = dirname(fileURLToPath(import.meta.url));

const KINDS = ['bug', 'feature', 'chore'];
const HOUR = 3_600_000;
const START = Date.now();

interface Todo {
  title: string;
  owner: string;
  done: boolean;
  completedAt: number | null;
  points: number;
  kind: string;
}

const todoOf = (i: number, done = i % 5 < 2, at = START - (i % 7_200) * 1_000): Todo => ({
  title: `todo ${i}`,
  owner: `person${i % 1_000}`,
  done,
  completedAt: done ? at : null,
  points: i % 13,
  kind: KINDS[i % 3]!,
});
const keyOf = (i: number) => `t${String(i).padStart(7, '0')}`;

/** The dashboard's aggregates; the last one only tells which batches a dashboard has seen. */
const DASHBOARD: Array<[string, AggregateQuery<Value>]> = [
  [
    'open vs done',
    { where: { kind: { in: KINDS } }, groupBy: { done: 'done' }, aggregate: { n: 'count' } },
  ],
  [
    'top 10 people by open work',
    {
      where: { done: false, kind: { in: KINDS } },
      groupBy: { owner: 'owner' },
      aggregate: { open: 'count', points: { sum: 'points' } },
      sort: [{ field: 'open', direction: 'desc' }],
      limit: 10,
    },
  ],
  [
    'completions per minute, last hour',
    {
      where: { done: true, completedAt: { gte: START - HOUR } },
      groupBy: { minute: { field: 'completedAt', bucket: '1m' } },
      aggregate: { n: 'count', last: { max: 'completedAt' } },
    },
  ],
  [
    'marker: latest batch per writer',
    { where: { kind: 'marker' }, groupBy: { w: 'writer' }, aggregate: { seq: { max: 'seq' } } },
  ],
];
const MARKER_ID = DASHBOARD.length;

function connect(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  socket.binaryType = 'nodebuffer';
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Says hello; resolves on the welcome. */
function hello(socket: WebSocket, nodeId: string): Promise<void> {
  socket.send(encodeMessage({ type: 'hello', protocol: PROTOCOL_VERSION, nodeId }));
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      if ((unpack(data) as Message).type !== 'welcome') return;
      socket.off('message', onMessage);
      resolve();
    };
    socket.on('message', onMessage);
  });
}

/** A dashboard: its aggregates' rows, and when it first saw each writer's batch numbers. */
class Dashboard {
  readonly results = DASHBOARD.map(() => new Map<string, AggregateRow>());
  /** Per writer, the greatest batch number seen, and when each was first seen. */
  readonly seen = new Map<number, number>();
  readonly seenAt = new Map<string, number>();
  answered = 0;
  refusals: string[] = [];
  messages = 0;

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => this.receive(unpack(data) as Message));
  }

  async subscribe(): Promise<void> {
    DASHBOARD.forEach(([, query], index) => {
      this.socket.send(encodeMessage({ type: 'aggregate', id: index + 1, map: 'todos', query }));
    });
  }

  private receive(message: Message): void {
    const now = performance.now();
    if (message.type === 'query_error') this.refusals.push(message.message);
    if (message.type !== 'aggregate_rows') return;
    this.messages++;
    const rows = this.results[message.id - 1]!;
    if (message.reset) rows.clear();
    for (const key of message.left) rows.delete(key);
    for (const row of message.rows) rows.set(row.key, row);
    if (message.last && message.reset) this.answered++;
    if (message.id !== MARKER_ID) return;
    for (const { value } of message.rows) {
      const writer = Number(value['w']);
      const seq = Number(value['seq']);
      for (let n = (this.seen.get(writer) ?? 0) + 1; n <= seq; n++)
        this.seenAt.set(`${writer}:${n}`, now);
      this.seen.set(writer, Math.max(seq, this.seen.get(writer) ?? 0));
    }
  }
}

/** A writer: batches of ticks and unticks, each with its marker record. */
class Writer {
  readonly hlc: HLC;
  seq = 0;
  acked = 0;
  sent = 0;
  readonly sentAt = new Map<number, number>();
  readonly ackedAt = new Map<number, number>();
  /** Marker op id → batch number. */
  private readonly markers = new Map<number, number>();
  private nextId = 1;

  constructor(
    readonly socket: WebSocket,
    readonly index: number,
    readonly batch: number,
    private readonly random: () => number,
  ) {
    this.hlc = new HLC({ nodeId: `writer-${index}` });
    socket.on('message', (data: Buffer) => {
      const message = unpack(data) as Message;
      if (message.type !== 'ack') return;
      const now = performance.now();
      this.acked += message.ids.length;
      for (const id of message.ids) {
        const seq = this.markers.get(id);
        if (seq === undefined) continue;
        this.markers.delete(id);
        this.ackedAt.set(seq, now);
      }
    });
  }

  sendBatch(): void {
    const seq = ++this.seq;
    const ops = [];
    for (let k = 0; k < this.batch - 1; k++) {
      const i = Math.floor(this.random() * RECORDS);
      const done = this.random() < 0.5;
      const record = { value: { ...todoOf(i, done, Date.now()) }, timestamp: this.hlc.now() };
      ops.push({ id: this.nextId++, map: 'todos', entry: toWireEntry(keyOf(i), record) });
    }
    const markerId = this.nextId++;
    this.markers.set(markerId, seq);
    const marker = { kind: 'marker', writer: this.index, seq };
    ops.push({
      id: markerId,
      map: 'todos',
      entry: toWireEntry(`marker-${this.index}`, { value: marker, timestamp: this.hlc.now() }),
    });
    this.sentAt.set(seq, performance.now());
    this.sent += ops.length;
    this.socket.send(encodeMessage({ type: 'ops', ops }));
  }
}

function random(seed: number) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

async function until(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Round {
  subscribeAllMs: number;
  opsPerSecond: number;
  commitToDashboard: { p50: number; p99: number; max: number };
  writeToDashboard: { p50: number; p99: number };
  writeToAck: { p50: number; p99: number };
  samples: number;
  missed: number;
  dashboardMessagesPerSecond: number;
  serverCpuPercent: number;
  postgresCpuPercent: number;
  loadGeneratorCpuPercent: number;
  serverRssMiB: number;
  agrees: boolean;
}

async function round(seed: number): Promise<Round> {
  const databaseUrl = await createDatabase('_aggregates');
  const port = 19_000 + Math.floor(Math.random() * 1000);
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  const sockets: WebSocket[] = [];
  try {
    await seedDatabase(databaseUrl, 'todos', RECORDS, (i) => [keyOf(i), { ...todoOf(i) }]);
    server = await startServer(databaseUrl, port, undefined, {
      TOPGUN_LIMITS: JSON.stringify({
        upgradesPerSecond: 10_000,
        upgradesBurst: 10_000,
        opsPerSecond: 50_000,
        opsBurst: 100_000,
        subscribesPerSecond: 1_000,
        subscribesBurst: 1_000,
      }),
    });
    const url = `ws://127.0.0.1:${port}/sync`;

    const subscribeStart = performance.now();
    const dashboards: Dashboard[] = [];
    for (let d = 0; d < DASHBOARDS; d++) {
      const socket = await connect(url);
      sockets.push(socket);
      await hello(socket, `dashboard-${d}`);
      const dashboard = new Dashboard(socket);
      dashboards.push(dashboard);
      await dashboard.subscribe();
    }
    await until(
      'every dashboard’s results',
      () => dashboards.every((each) => each.answered === DASHBOARD.length),
      120_000,
    );
    const subscribeAllMs = performance.now() - subscribeStart;
    const refusals = dashboards.flatMap((each) => each.refusals);
    if (refusals.length > 0) throw new Error(`refused: ${refusals[0]}`);

    const next = random(seed);
    const batch = Math.round(RATE / WRITERS / BATCHES_PER_SECOND);
    const writers: Writer[] = [];
    for (let w = 0; w < WRITERS; w++) {
      const socket = await connect(url);
      sockets.push(socket);
      await hello(socket, `writer-${w}`);
      writers.push(new Writer(socket, w, batch, next));
    }
    // Open loop: each writer sends on its own timer, the writers spread over the interval.
    const intervalMs = 1000 / BATCHES_PER_SECOND;
    const timers: NodeJS.Timeout[] = [];
    writers.forEach((writer, index) => {
      timers.push(
        setTimeout(
          () => {
            let due = performance.now();
            const tick = () => {
              writer.sendBatch();
              due += intervalMs;
              timers.push(setTimeout(tick, Math.max(0, due - performance.now())));
            };
            tick();
          },
          (intervalMs * index) / WRITERS,
        ),
      );
    });
    await new Promise((resolve) => setTimeout(resolve, WARMUP_S * 1000));
    const firstSeq = writers.map((writer) => writer.seq + 1);
    const ackedBefore = writers.reduce((sum, writer) => sum + writer.acked, 0);
    const messagesBefore = dashboards.reduce((sum, each) => sum + each.messages, 0);
    const cpuBefore = cpuSeconds([server.pid!]);
    const measureStart = performance.now();
    await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
    const lastSeq = writers.map((writer) => writer.seq);
    const elapsed = (performance.now() - measureStart) / 1000;
    const cpuAfter = cpuSeconds([server.pid!]);
    const cpuPercent = (key: keyof typeof cpuAfter) =>
      Math.round((100 * (cpuAfter[key] - cpuBefore[key])) / elapsed);
    const opsPerSecond =
      (writers.reduce((sum, writer) => sum + writer.acked, 0) - ackedBefore) / elapsed;
    const dashboardMessagesPerSecond =
      (dashboards.reduce((sum, each) => sum + each.messages, 0) - messagesBefore) / elapsed;
    for (const timer of timers) clearTimeout(timer);
    // Everything sent is acknowledged and reaches every dashboard.
    await until(
      'the last batches on every dashboard',
      () =>
        dashboards.every((dashboard) =>
          writers.every((writer) => (dashboard.seen.get(writer.index) ?? 0) >= writer.seq),
        ),
      30_000,
    );
    const serverRssMiB = residentMiB(server.pid!);

    const fromCommit: number[] = [];
    const fromWrite: number[] = [];
    const toAck: number[] = [];
    let missed = 0;
    for (const writer of writers) {
      for (let seq = firstSeq[writer.index]!; seq <= lastSeq[writer.index]!; seq++) {
        const acked = writer.ackedAt.get(seq);
        const sent = writer.sentAt.get(seq)!;
        if (acked === undefined) {
          missed++;
          continue;
        }
        toAck.push(acked - sent);
        for (const dashboard of dashboards) {
          const seen = dashboard.seenAt.get(`${writer.index}:${seq}`);
          if (seen === undefined) {
            missed++;
            continue;
          }
          fromCommit.push(Math.max(0, seen - acked));
          fromWrite.push(seen - sent);
        }
      }
    }
    for (const list of [fromCommit, fromWrite, toAck]) list.sort((a, b) => a - b);

    // The dashboards' figures against a fresh evaluation of every record.
    const checker = createClient({ url, storage: 'memory', multiTab: false });
    const todos = checker.getMap<Value>('todos');
    await until('the whole map', () => todos.size >= RECORDS + WRITERS, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const entries = [...todos.entries()];
    await checker.close();
    const agrees = DASHBOARD.every(([, query], index) =>
      dashboards.every(
        (dashboard) =>
          JSON.stringify(
            [...dashboard.results[index]!.values()].sort((a, b) => (a.key < b.key ? -1 : 1)),
          ) ===
          JSON.stringify(
            evaluateAggregate(query, entries).sort((a, b) => (a.key < b.key ? -1 : 1)),
          ),
      ),
    );
    const at = (list: number[], p: number) => Math.round(percentile(list, p) * 10) / 10;
    return {
      subscribeAllMs: Math.round(subscribeAllMs),
      opsPerSecond: Math.round(opsPerSecond),
      commitToDashboard: {
        p50: at(fromCommit, 50),
        p99: at(fromCommit, 99),
        max: at(fromCommit, 100),
      },
      writeToDashboard: { p50: at(fromWrite, 50), p99: at(fromWrite, 99) },
      writeToAck: { p50: at(toAck, 50), p99: at(toAck, 99) },
      samples: fromCommit.length,
      missed,
      dashboardMessagesPerSecond: Math.round(dashboardMessagesPerSecond),
      serverCpuPercent: cpuPercent('server'),
      postgresCpuPercent: cpuPercent('postgres'),
      loadGeneratorCpuPercent: cpuPercent('loadGenerator'),
      serverRssMiB: Math.round(serverRssMiB),
      agrees,
    };
  } finally {
    for (const socket of sockets) socket.terminate();
    if (server !== undefined) await stopServer(server);
    await dropDatabase(databaseUrl);
  }
}

const rounds: Round[] = [];
for (let n = 0; n < ROUNDS; n++) {
  rounds.push(await round(n + 1));
  console.log(JSON.stringify(rounds.at(-1)));
}
const mid = (pick: (each: Round) => number) => median(rounds.map(pick));
const p99 = mid((r) => r.commitToDashboard.p99);
const result = {
  what: `${DASHBOARDS} dashboards (raw WebSocket connections), each subscribed to ${DASHBOARD.length} aggregates of map todos (${RECORDS.toLocaleString('en')} records, on PostgreSQL, in a server process), while ${WRITERS} writers send ${RATE.toLocaleString('en')} ops/s open loop (${BATCHES_PER_SECOND} batches/s each, every batch ticking or unticking random todos and writing its marker); latency per dashboard and batch, from the batch's ack (commit) or its sending to the dashboard's update that counts it`,
  machine: machineInfo(),
  records: RECORDS,
  dashboards: DASHBOARDS,
  writers: WRITERS,
  rate: RATE,
  seconds: SECONDS,
  rounds: ROUNDS,
  aggregates: DASHBOARD.map(([name, query]) => ({ name, query })),
  median: {
    subscribeAllMs: mid((r) => r.subscribeAllMs),
    opsPerSecond: mid((r) => r.opsPerSecond),
    commitToDashboardP50Ms: mid((r) => r.commitToDashboard.p50),
    commitToDashboardP99Ms: p99,
    writeToDashboardP50Ms: mid((r) => r.writeToDashboard.p50),
    writeToDashboardP99Ms: mid((r) => r.writeToDashboard.p99),
    writeToAckP99Ms: mid((r) => r.writeToAck.p99),
    dashboardMessagesPerSecond: mid((r) => r.dashboardMessagesPerSecond),
    serverCpuPercent: mid((r) => r.serverCpuPercent),
    serverRssMiB: mid((r) => r.serverRssMiB),
  },
  targets: [
    {
      target: 'p99 from commit to each dashboard’s update under 50 ms at 10k ops/s',
      met: p99 < 50 && rounds.every((r) => r.opsPerSecond >= RATE * 0.95 && r.agrees),
      value: `${p99} ms at ${mid((r) => r.opsPerSecond).toLocaleString('en')} ops/s`,
    },
  ],
  runs: rounds,
};
console.log(JSON.stringify(result.median), JSON.stringify(result.targets));
const path = join(here, '../results/aggregates.json');
const stored = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
mkdirSync(dirname(path), { recursive: true });
writeFileSync(path, `${JSON.stringify({ ...stored, server: result }, null, 2)}\n`);
