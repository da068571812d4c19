/**
 * Sync server load test on loopback: the server in its own process on PostgreSQL, and a
 * load generator with 200 WebSocket clients each sending batches of 10 ops at a fixed rate
 * (open loop), measuring ops acknowledged after COMMIT per second, ack latency percentiles,
 * and the fan-out rate to the other clients syncing the same maps. Writes
 * `results/server.json`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Message, Value } from '@topgun/core';
import { LoadClientBase, sendAtRate } from './loadClient.js';
import { formatRate, machineInfo } from './measure.js';
import {
  cpuSeconds,
  createDatabase,
  dropDatabase,
  percentile,
  residentMiB,
  startServer,
  stopServer,
} from './serverProcesses.js';

const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 200);
const BATCH = 10;
/** Clients per map: each write reaches the other clients of its map (fan-out). */
const CLIENTS_PER_MAP = Number(process.env['BENCH_CLIENTS_PER_MAP'] ?? 1);
const WARMUP_S = 3;
// Long enough that full garbage collections of the growing grid fall inside the measurement.
const MEASURE_S = Number(process.env['BENCH_SECONDS'] ?? 30);
const RATES = (process.env['BENCH_RATES'] ?? '10000,20000,30000').split(',').map(Number);
/**
 * `BENCH_UPDATES`: the share of ops (0 to 1) sent as updates of one field instead of whole
 * writes; these are merged under row locks (results in `server-updates.json`).
 */
const UPDATE_SHARE = Number(process.env['BENCH_UPDATES'] ?? 0);
const here = dirname(fileURLToPath(import.meta.url));

const rejectionReasons = new Map<string, number>();

class LoadClient extends LoadClientBase {
  fannedOut = 0;

  constructor(url: string, index: number) {
    super(url, index, `load-${Math.floor(index / CLIENTS_PER_MAP)}`, BATCH);
  }

  protected valueOf(n: number): Value {
    return { title: `Task ${n}`, done: n % 2 === 0, n };
  }

  protected receive(message: Message): void {
    if (message.type === 'reject') {
      for (const rejection of message.rejections)
        rejectionReasons.set(rejection.reason, (rejectionReasons.get(rejection.reason) ?? 0) + 1);
    } else if (message.type === 'changes') {
      for (const change of message.changes) this.fannedOut += change.entries.length;
    }
  }

  override resetCounters(): void {
    super.resetCounters();
    this.fannedOut = 0;
  }
}

/**
 * `BENCH_TIMELINE=1`: per 250 ms of sending time, `start:worst/over50` (the worst ack latency
 * and the batches over 50 ms), which tells short stalls from steady queueing.
 */
function printTimeline(clients: readonly LoadClient[], measureStart: number): void {
  const windows = new Map<number, number[]>();
  for (const client of clients) {
    client.ackLatencies.forEach((latency, index) => {
      const window = Math.floor((client.ackSentTimes[index]! - measureStart) / 250);
      const list = windows.get(window) ?? [];
      list.push(latency);
      windows.set(window, list);
    });
  }
  const line = [...windows]
    .sort((a, b) => a[0] - b[0])
    .map(([window, list]) => {
      const worst = Math.round(Math.max(...list));
      return `${window * 250}:${worst}/${list.filter((latency) => latency > 50).length}`;
    });
  console.log(line.join(' '));
}

async function run(rate: number) {
  const databaseUrl = await createDatabase();
  const port = 18_000 + Math.floor(Math.random() * 1000);
  const server = await startServer(databaseUrl, port, process.env['BENCH_SERVER_CLI']);
  const clients = Array.from(
    { length: CLIENTS },
    (_, index) => new LoadClient(`ws://127.0.0.1:${port}/sync`, index),
  );
  for (const client of clients) client.updateShare = UPDATE_SHARE;
  await Promise.all(clients.map((client) => client.start()));

  const stopSending = sendAtRate(clients, rate / BATCH);
  await new Promise((resolve) => setTimeout(resolve, WARMUP_S * 1000));
  for (const client of clients) client.resetCounters();
  const cpuBefore = cpuSeconds([server.pid!]);
  const measureStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, MEASURE_S * 1000));
  const seconds = (performance.now() - measureStart) / 1000;
  const cpuAfter = cpuSeconds([server.pid!]);
  const serverRssMiB = residentMiB(server.pid!);
  const cpuShare = (key: keyof typeof cpuAfter) => (cpuAfter[key] - cpuBefore[key]) / seconds;
  const acked = clients.reduce((sum, client) => sum + client.acked, 0);
  const rejected = clients.reduce((sum, client) => sum + client.rejected, 0);
  const fannedOut = clients.reduce((sum, client) => sum + client.fannedOut, 0);
  const latencies = clients.flatMap((client) => client.ackLatencies).sort((a, b) => a - b);
  if (process.env['BENCH_TIMELINE']) printTimeline(clients, measureStart);
  stopSending();
  // The server's own view: ack latency from receiving an ops frame to sending its ack
  // (excludes the load generator's event loop and the network).
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  /** Upper bounds (ms) of the histogram buckets holding quantile `q`, and the count. */
  const histogram = (name: string, label = '') => {
    const buckets = [...metrics.matchAll(new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\d+)$`, 'gm'))]
      .filter(([, labels]) => labels!.includes(label))
      .map(([, labels, count]) => {
        const le = /le="([^"]+)"/.exec(labels!)![1]!;
        return { le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: Number(count) };
      });
    const total = buckets.at(-1)?.count ?? 0;
    const quantile = (q: number) =>
      (buckets.find((bucket) => bucket.count >= q * total)?.le ?? Number.NaN) * 1000;
    return { total, p50: quantile(0.5), p99: quantile(0.99) };
  };
  const serverAck = histogram('topgun_ack_latency_seconds');
  const storageWrites = histogram('topgun_storage_latency_seconds', 'operation="write_records"');
  for (const client of clients) client.socket.close();
  await stopServer(server);
  await dropDatabase(databaseUrl);
  return {
    offeredOpsPerSecond: rate,
    ackedOpsPerSecond: acked / seconds,
    rejected,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    fanOutRecordsPerSecond: fannedOut / seconds,
    batchesMeasured: latencies.length,
    /** Upper bounds of the server-side ack latency histogram buckets holding p50 and p99 (ms). */
    serverP50AtMostMs: serverAck.p50,
    serverP99AtMostMs: serverAck.p99,
    /** Group commits (one statement each) over the whole run, and their latency buckets. */
    storageWrites: storageWrites.total,
    storageP50AtMostMs: storageWrites.p50,
    storageP99AtMostMs: storageWrites.p99,
    rejectionReasons: Object.fromEntries(rejectionReasons),
    /** The server's resident memory at the end of the measurement (MiB), from /proc. */
    serverRssMiB,
    /** CPU used during the measurement, in cores (1 = one core busy), from /proc. */
    cpuCores: {
      server: cpuShare('server'),
      postgres: cpuShare('postgres'),
      loadGenerator: cpuShare('loadGenerator'),
    },
  };
}

/** Runs per rate (`BENCH_REPEAT`): a full collection may or may not fall in one run. */
const REPEAT = Number(process.env['BENCH_REPEAT'] ?? 3);
const results = [];
for (const rate of RATES) {
  const runs = [];
  for (let attempt = 0; attempt < REPEAT; attempt++) {
    const result = await run(rate);
    runs.push(result);
    console.log(
      `offered ${formatRate(rate).padEnd(10)} acked ${formatRate(result.ackedOpsPerSecond).padEnd(10)} p50 ${result.p50Ms.toFixed(1)} ms  p99 ${result.p99Ms.toFixed(1)} ms  max ${result.maxMs.toFixed(1)} ms  server-side p50 ≤ ${result.serverP50AtMostMs} ms, p99 ≤ ${result.serverP99AtMostMs} ms  commits ${result.storageWrites} (p50 ≤ ${result.storageP50AtMostMs} ms, p99 ≤ ${result.storageP99AtMostMs} ms)  cpu: server ${result.cpuCores.server.toFixed(2)}, postgres ${result.cpuCores.postgres.toFixed(2)}, generator ${result.cpuCores.loadGenerator.toFixed(2)}  server RSS ${result.serverRssMiB.toFixed(0)} MiB  fan-out ${formatRate(result.fanOutRecordsPerSecond)}  rejected ${result.rejected} ${JSON.stringify(result.rejectionReasons)}`,
    );
  }
  // The run with the median p99 stands for the rate; every run's figures are kept.
  const median = [...runs].sort((a, b) => a.p99Ms - b.p99Ms)[Math.floor(runs.length / 2)]!;
  results.push({
    ...median,
    runs: runs.map((result) => ({
      ackedOpsPerSecond: result.ackedOpsPerSecond,
      p50Ms: result.p50Ms,
      p99Ms: result.p99Ms,
      maxMs: result.maxMs,
    })),
  });
  if (REPEAT > 1)
    console.log(
      `  median of ${REPEAT}: p99 ${median.p99Ms.toFixed(1)} ms (runs: ${runs.map((result) => result.p99Ms.toFixed(1)).join(', ')})`,
    );
}
const best = results
  .filter(
    (result) => result.p99Ms < 50 && result.ackedOpsPerSecond >= 0.98 * result.offeredOpsPerSecond,
  )
  .at(-1);
const targets = [
  {
    target: '>= 30,000 ops/s acknowledged after commit with p99 < 50 ms (median run)',
    met: best !== undefined && best.ackedOpsPerSecond >= 30_000,
    value:
      best === undefined
        ? 'no rate met p99 < 50 ms'
        : `${formatRate(best.ackedOpsPerSecond)} at p99 ${best.p99Ms.toFixed(1)} ms`,
  },
];
console.log('\nTargets:');
for (const { target, met, value } of targets)
  console.log(`  ${met ? 'MET    ' : 'NOT MET'} ${target.padEnd(60)} ${value}`);
const out = join(
  here,
  '..',
  'results',
  UPDATE_SHARE > 0
    ? 'server-updates.json'
    : CLIENTS_PER_MAP > 1
      ? 'server-fanout.json'
      : 'server.json',
);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ machine: machineInfo(), clients: CLIENTS, batch: BATCH, clientsPerMap: CLIENTS_PER_MAP, measureSeconds: MEASURE_S, repeat: REPEAT, updateShare: UPDATE_SHARE, results, targets }, null, 2)}\n`,
);
console.log(`\nwrote ${out}`);
