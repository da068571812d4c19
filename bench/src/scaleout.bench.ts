/**
 * Scale-out: 1, 2 and 3 server processes on one PostgreSQL behind a round-robin TCP balancer
 * (`@topgun/server/testing`), side by side in one run. 200 WebSocket clients, 10 per map,
 * each writing batches of 10 ops at a fixed total rate (open loop) and following its map, so
 * every write reaches the 9 other clients of its map, on its own process or another. Measures
 * the ack latency and the write → other client latency, local and cross-process.
 *
 * Then the cost of announcing: one process at 30k ops/s without fan-out, this tree against
 * the build in `BENCH_BEFORE_CLI` (the server before announcements), interleaved.
 *
 * Writes `results/scaleout.json`.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Message, Value } from '@topgun/core';
import { RoundRobinBalancer } from '@topgun/server/testing';
import { LoadClientBase, sendAtRate } from './loadClient.js';
import { formatRate, machineInfo } from './measure.js';
import {
  cpuSeconds,
  createDatabase,
  dropDatabase,
  percentile,
  residentMiB,
  SERVER_CLI,
  startServer,
  stopServer,
} from './serverProcesses.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLIENTS = 200;
const BATCH = 10;
const WARMUP_S = 3;
const MEASURE_S = Number(process.env['BENCH_SECONDS'] ?? 20);
const REPEAT = Number(process.env['BENCH_REPEAT'] ?? 3);
const FANOUT_RATES = (process.env['BENCH_RATES'] ?? '10000,5000').split(',').map(Number);
const PROCESS_COUNTS = (process.env['BENCH_PROCESSES'] ?? '1,2,3').split(',').map(Number);
const COST_RATE = Number(process.env['BENCH_COST_RATE'] ?? 30_000);
/**
 * `BENCH_BALANCER=1`: clients connect through a round-robin TCP balancer run in this process.
 * By default each connects straight to the next process in turn (the same spread), since the
 * balancer's copying would take the load generator's share of the two cores.
 */
const THROUGH_BALANCER = process.env['BENCH_BALANCER'] === '1';
const BEFORE_CLI = process.env['BENCH_BEFORE_CLI'];
/** Which parts run (`fanout,cost,memory`), and where the results go. */
const PARTS = new Set((process.env['BENCH_PARTS'] ?? 'fanout,cost,memory').split(','));
const OUT = process.env['BENCH_OUT'] ?? 'scaleout.json';

interface Written {
  readonly sentAt: number;
  readonly writer: number;
}

class LoadClient extends LoadClientBase {
  /** The process (balancer backend) this client reached. */
  backend = -1;
  localDeliveries: number[] = [];
  remoteDeliveries: number[] = [];

  constructor(
    url: string,
    index: number,
    clientsPerMap: number,
    private readonly backendOf: (writer: number) => number,
  ) {
    super(url, index, `load-${Math.floor(index / clientsPerMap)}`, BATCH);
  }

  /** A `Written` value: when, and by which client, so receivers can time its delivery. */
  protected valueOf(n: number, now: number): Value {
    return { title: `Task ${n}`, n, sentAt: now, writer: this.index };
  }

  protected receive(message: Message): void {
    if (message.type !== 'changes') return;
    const now = performance.now();
    for (const change of message.changes) {
      for (const entry of change.entries) {
        const value = entry[2] as Written | null;
        if (value === null || typeof value.sentAt !== 'number') continue;
        const remote = this.backendOf(value.writer) !== this.backend;
        (remote ? this.remoteDeliveries : this.localDeliveries).push(now - value.sentAt);
      }
    }
  }

  override resetCounters(): void {
    super.resetCounters();
    this.localDeliveries = [];
    this.remoteDeliveries = [];
  }
}

function summary(latencies: number[]) {
  const sorted = latencies.sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1) ?? Number.NaN,
  };
}

/** One measured run: `processes` servers (of `cli`), at `rate` ops/s. */
async function run(options: {
  processes: number;
  rate: number;
  clientsPerMap: number;
  cli: string;
}) {
  const databaseUrl = await createDatabase();
  const basePort = 18_000 + Math.floor(Math.random() * 1000) * 4;
  const servers: ChildProcess[] = [];
  for (let index = 0; index < options.processes; index++)
    servers.push(await startServer(databaseUrl, basePort + index, options.cli));
  const urls = servers.map((_, index) => `http://127.0.0.1:${basePort + index}`);
  const balancer = THROUGH_BALANCER ? RoundRobinBalancer.of(urls) : undefined;
  const balancerUrl = balancer === undefined ? undefined : await balancer.start();
  const clients: LoadClient[] = [];
  const backendOf = (writer: number) => clients[writer]!.backend;
  for (let index = 0; index < CLIENTS; index++) {
    const direct = index % servers.length;
    const url = `${(balancerUrl ?? urls[direct]!).replace('http', 'ws')}/sync`;
    const client = new LoadClient(url, index, options.clientsPerMap, backendOf);
    // One at a time, so the balancer's choice is known.
    await client.start();
    client.backend = balancer === undefined ? direct : balancer.lastBackend;
    clients.push(client);
  }

  const stopSending = sendAtRate(clients, options.rate / BATCH);
  await new Promise((resolve) => setTimeout(resolve, WARMUP_S * 1000));
  for (const client of clients) client.resetCounters();
  const pids = servers.map((server) => server.pid!);
  const cpuBefore = cpuSeconds(pids);
  const measureStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, MEASURE_S * 1000));
  const seconds = (performance.now() - measureStart) / 1000;
  const cpuAfter = cpuSeconds(pids);
  stopSending();
  const rssMiB = pids.map(residentMiB);
  const cpuShare = (key: keyof typeof cpuAfter) => (cpuAfter[key] - cpuBefore[key]) / seconds;
  const result = {
    processes: options.processes,
    offeredOpsPerSecond: options.rate,
    ackedOpsPerSecond: clients.reduce((sum, client) => sum + client.acked, 0) / seconds,
    rejected: clients.reduce((sum, client) => sum + client.rejected, 0),
    ack: summary(clients.flatMap((client) => client.ackLatencies)),
    /** Write → another client of the same process. */
    local: summary(clients.flatMap((client) => client.localDeliveries)),
    /** Write → a client of another process. */
    remote: summary(clients.flatMap((client) => client.remoteDeliveries)),
    serverRssMiB: rssMiB,
    cpuCores: {
      servers: cpuShare('server'),
      postgres: cpuShare('postgres'),
      loadGenerator: cpuShare('loadGenerator'),
    },
  };
  for (const client of clients) client.socket.close();
  await balancer?.stop();
  await Promise.all(servers.map(stopServer));
  await dropDatabase(databaseUrl);
  return result;
}

const format = (label: string, figures: ReturnType<typeof summary>) =>
  `${label} p50 ${figures.p50Ms.toFixed(1)} p99 ${figures.p99Ms.toFixed(1)} ms (${figures.count})`;

/** The run whose `key` is the median of the runs. */
function medianBy<T>(runs: readonly T[], key: (run: T) => number): T {
  return [...runs].sort((a, b) => key(a) - key(b))[Math.floor(runs.length / 2)]!;
}

// Part 1: fan-out across processes, the configurations interleaved in each repeat: one
// process of the build before announcements (if given), then 1, 2 and 3 processes of this one.
const configurations = [
  ...(BEFORE_CLI === undefined
    ? []
    : [{ label: 'before: 1 process', processes: 1, cli: BEFORE_CLI }]),
  ...PROCESS_COUNTS.map((processes) => ({
    label: `${processes} process${processes > 1 ? 'es' : ''}`,
    processes,
    cli: SERVER_CLI,
  })),
];
const fanoutRuns = new Map<string, Awaited<ReturnType<typeof run>>[]>();
for (let attempt = 0; attempt < (PARTS.has('fanout') ? REPEAT : 0); attempt++) {
  for (const rate of FANOUT_RATES) {
    for (const { label: name, processes, cli } of configurations) {
      const label = `${name} at ${formatRate(rate)}`;
      const result = await run({ processes, rate, clientsPerMap: 10, cli });
      fanoutRuns.set(label, [...(fanoutRuns.get(label) ?? []), result]);
      console.log(
        `${label}: offered ${formatRate(rate)} acked ${formatRate(result.ackedOpsPerSecond)}  ${format('ack', result.ack)}  ${format('local', result.local)}  ${format('remote', result.remote)}  cpu: servers ${result.cpuCores.servers.toFixed(2)}, postgres ${result.cpuCores.postgres.toFixed(2)}, generator ${result.cpuCores.loadGenerator.toFixed(2)}  rejected ${result.rejected}`,
      );
    }
  }
}
const fanout = [...fanoutRuns].map(([label, runs]) => {
  // Cross-process latency stands for a multi-process run, same-process for one process.
  const median = medianBy(runs, (result) =>
    result.processes > 1 ? result.remote.p99Ms : result.local.p99Ms,
  );
  return {
    label,
    ...median,
    runs: runs.map((result) => ({
      ackedOpsPerSecond: result.ackedOpsPerSecond,
      ackP99Ms: result.ack.p99Ms,
      localP99Ms: result.local.p99Ms,
      remoteP99Ms: result.remote.p99Ms,
    })),
  };
});

// Part 2: the cost of announcing, one process at 30k ops/s without fan-out.
const cost: Record<string, Array<Awaited<ReturnType<typeof run>>>> = {};
if (PARTS.has('cost')) cost['announcing'] = [];
if (PARTS.has('cost') && BEFORE_CLI !== undefined) cost['before'] = [];
for (let attempt = 0; attempt < (PARTS.has('cost') ? REPEAT : 0); attempt++) {
  for (const [label, cli] of [
    ['before', BEFORE_CLI],
    ['announcing', SERVER_CLI],
  ] as const) {
    if (cli === undefined) continue;
    const result = await run({ processes: 1, rate: COST_RATE, clientsPerMap: 1, cli });
    cost[label]!.push(result);
    console.log(
      `cost (${label}) offered ${formatRate(COST_RATE)} acked ${formatRate(result.ackedOpsPerSecond)}  ${format('ack', result.ack)}  cpu: server ${result.cpuCores.servers.toFixed(2)}, postgres ${result.cpuCores.postgres.toFixed(2)}`,
    );
  }
}
const costMedians = Object.fromEntries(
  Object.entries(cost).map(([label, runs]) => {
    const median = medianBy(runs, (result) => result.ack.p99Ms);
    return [
      label,
      {
        ackedOpsPerSecond: median.ackedOpsPerSecond,
        ack: median.ack,
        cpuCores: median.cpuCores,
        runs: runs.map((result) => ({
          ackedOpsPerSecond: result.ackedOpsPerSecond,
          ackP99Ms: result.ack.p99Ms,
        })),
      },
    ];
  }),
);

// Part 3: memory per connected client (one process, idle clients that walked their map).
async function connectionMemory(count: number) {
  const databaseUrl = await createDatabase();
  const port = 18_000 + Math.floor(Math.random() * 1000) * 4;
  const server = await startServer(databaseUrl, port, SERVER_CLI, {
    TOPGUN_LIMITS: JSON.stringify({
      upgradesPerSecond: 100_000,
      upgradesBurst: 100_000,
      maxConnections: count * 2,
      maxConnectionsPerUser: count * 2,
    }),
  });
  // Settled: a first client, then the baseline.
  const url = `ws://127.0.0.1:${port}/sync`;
  const warm = new LoadClient(url, 0, 100, () => 0);
  await warm.start();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const before = residentMiB(server.pid!);
  const clients: LoadClient[] = [];
  for (let start = 0; start < count; start += 100) {
    const batch = Array.from(
      { length: Math.min(100, count - start) },
      (_, offset) => new LoadClient(url, start + offset + 1, 100, () => 0),
    );
    await Promise.all(batch.map((client) => client.start()));
    clients.push(...batch);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const after = residentMiB(server.pid!);
  for (const client of [warm, ...clients]) client.socket.close();
  await stopServer(server);
  await dropDatabase(databaseUrl);
  return {
    clients: count,
    rssBeforeMiB: before,
    rssAfterMiB: after,
    kibPerClient: ((after - before) * 1024) / count,
  };
}
const memory = PARTS.has('memory')
  ? await connectionMemory(Number(process.env['BENCH_IDLE_CLIENTS'] ?? 2_000))
  : undefined;
if (memory !== undefined)
  console.log(
    `memory: ${memory.clients} idle clients took ${memory.kibPerClient.toFixed(1)} KiB each (RSS ${memory.rssBeforeMiB.toFixed(0)} → ${memory.rssAfterMiB.toFixed(0)} MiB)`,
  );

/** Grid memory per record and per map, before and after, as `gridMemory.ts` measured it. */
function gridMemory() {
  const path = join(here, '..', 'results', 'grid-memory.json');
  if (!existsSync(path)) return 'run src/gridMemory.ts for the grid memory figures';
  const measured = JSON.parse(readFileSync(path, 'utf8')) as Record<
    'before' | 'after',
    { perRecord: { bytes: number }; perMap: { bytes: number } }
  >;
  return {
    source: 'results/grid-memory.json',
    perRecordBytes: {
      before: measured.before.perRecord.bytes,
      after: measured.after.perRecord.bytes,
    },
    perMapBytes: { before: measured.before.perMap.bytes, after: measured.after.perMap.bytes },
  };
}

const multi = fanout.filter(
  (result) => result.processes > 1 && result.offeredOpsPerSecond === FANOUT_RATES[0],
);
const before = costMedians['before']?.ack.p99Ms;
const announcing = costMedians['announcing']?.ack.p99Ms ?? Number.NaN;
const targets = [
  {
    target: `cross-process write → client p99 < 100 ms at ${formatRate(FANOUT_RATES[0]!)} (median run)`,
    met: multi.length > 0 && multi.every((result) => result.remote.p99Ms < 100),
    value: multi
      .map((result) => `${result.processes} processes: ${result.remote.p99Ms.toFixed(1)} ms`)
      .join(', '),
  },
  {
    target: `one process at ${formatRate(COST_RATE)}: ack p99 within 10% of the server before announcements`,
    met: before !== undefined && announcing <= before * 1.1,
    value:
      before === undefined
        ? `announcing ${announcing.toFixed(1)} ms (no BENCH_BEFORE_CLI to compare with)`
        : `announcing ${announcing.toFixed(1)} ms vs before ${before.toFixed(1)} ms`,
  },
];
console.log('\nTargets:');
for (const { target, met, value } of targets)
  console.log(`  ${met ? 'MET    ' : 'NOT MET'} ${target.padEnd(80)} ${value}`);
const out = join(here, '..', 'results', OUT);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      machine: machineInfo(),
      clients: CLIENTS,
      batch: BATCH,
      measureSeconds: MEASURE_S,
      throughBalancer: THROUGH_BALANCER,
      repeat: REPEAT,
      fanout,
      announcingCost: costMedians,
      connectionMemory: memory,
      gridMemory: gridMemory(),
      targets,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwrote ${out}`);
