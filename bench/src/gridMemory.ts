/**
 * Memory of the server's grid, per record (one map of 100 000 records) and per map (20 000
 * maps of one record), loaded from PostgreSQL: the process's heap plus memory outside it
 * (array buffers, where dense Merkle partitions live), medians of three rounds, each with a
 * fresh grid. Also the grid's own estimate of its size, next to what was measured.
 * Run with `node --expose-gc --import tsx src/gridMemory.ts`. Writes its figures under the key
 * `BENCH_LABEL` (default `current`) of `BENCH_OUT` (default `results/grid-memory.json`),
 * keeping the other keys: runs of two versions of the code (e.g. `before`, `after`) end up side
 * by side in one file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTimestamp, HLC, type Value } from '@topgun/core';
import {
  createPgDriver,
  MapGrid,
  type RecordWrite,
  ServerMetrics,
  SqlStorage,
} from '@topgun/server';
import pg from 'pg';
import { machineInfo } from './measure.js';
import { keyOf, todoOf } from './workload.js';

declare const gc: () => void;

const RECORDS = Number(process.env['BENCH_GRID_RECORDS'] ?? 100_000);
const MAPS = Number(process.env['BENCH_GRID_MAPS'] ?? 20_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const DATABASE = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const LABEL = process.env['BENCH_LABEL'] ?? 'current';
const OUT =
  process.env['BENCH_OUT'] ??
  join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'grid-memory.json');
/** Loads in flight while the small maps are loaded (the pool's connections are shared). */
const CONCURRENT_LOADS = 8;

/** Heap plus memory outside it that JavaScript objects hold (array buffers among it). */
function usedBytes(): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function seed(storage: SqlStorage): Promise<void> {
  const hlc = new HLC({ nodeId: 'bench' });
  const write = async (writes: RecordWrite[]) => {
    for (let start = 0; start < writes.length; start += 5_000) {
      await storage.writeRecords(writes.slice(start, start + 5_000));
    }
  };
  const record = (index: number) => {
    const timestamp = hlc.now();
    return {
      record: { value: todoOf(index) as unknown as Value, timestamp },
      serializedTimestamp: formatTimestamp(timestamp),
    };
  };
  await write(
    Array.from({ length: RECORDS }, (_, index) => ({
      map: 'todos',
      key: keyOf(index),
      ...record(index),
    })),
  );
  await write(
    Array.from({ length: MAPS }, (_, index) => ({
      map: `list-${index}`,
      key: keyOf(index),
      ...record(index),
    })),
  );
}

/** Bytes measured and estimated per unit once `load` has filled a fresh grid. */
async function measure(
  storage: SqlStorage,
  units: number,
  load: (grid: MapGrid) => Promise<void>,
): Promise<{ measured: number; estimated: number }> {
  const before = usedBytes();
  const grid = new MapGrid({
    storage,
    metrics: new ServerMetrics(),
    nodeId: 'bench',
    now: Date.now,
  });
  await load(grid);
  const after = usedBytes();
  const estimated = grid.byteSize / units;
  // The grid is kept reachable until after the measurement.
  if (grid.loadedMaps().length === 0) throw new Error('nothing loaded');
  return { measured: (after - before) / units, estimated };
}

const name = `topgun_grid_memory_${process.pid}`;
const admin = new pg.Client({ connectionString: DATABASE });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(DATABASE);
url.pathname = `/${name}`;
const storage = new SqlStorage(createPgDriver({ connectionString: url.toString() }));
try {
  await storage.migrate();
  await seed(storage);
  const names = Array.from({ length: MAPS }, (_, index) => `list-${index}`);
  // Connections of the pool, prepared statements, compiled code: in place before measuring.
  await measure(storage, 1, async (grid) => {
    let next = 0;
    const worker = async () => {
      while (next < 1_000) await grid.get(names[next++]!);
    };
    await Promise.all(Array.from({ length: CONCURRENT_LOADS }, worker));
  });
  const perRecord: Array<{ measured: number; estimated: number }> = [];
  const perMap: Array<{ measured: number; estimated: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    perRecord.push(
      await measure(storage, RECORDS, async (grid) => {
        const map = await grid.get('todos');
        if (map.size !== RECORDS) throw new Error(`loaded ${map.size} records`);
      }),
    );
    perMap.push(
      await measure(storage, MAPS, async (grid) => {
        let next = 0;
        const worker = async () => {
          while (next < names.length) await grid.get(names[next++]!);
        };
        await Promise.all(Array.from({ length: CONCURRENT_LOADS }, worker));
      }),
    );
    console.log(
      `round ${round + 1}: ${perRecord.at(-1)!.measured.toFixed(0)} B/record, ${perMap.at(-1)!.measured.toFixed(0)} B/map (estimated ${perRecord.at(-1)!.estimated.toFixed(0)}, ${perMap.at(-1)!.estimated.toFixed(0)})`,
    );
  }
  const summary = (runs: Array<{ measured: number; estimated: number }>) => ({
    bytes: median(runs.map((run) => run.measured)),
    estimatedBytes: median(runs.map((run) => run.estimated)),
    runs: runs.map((run) => Math.round(run.measured)),
  });
  const result = {
    commit: execFileSync('git', ['describe', '--always', '--dirty']).toString().trim(),
    machine: machineInfo(),
    records: RECORDS,
    maps: MAPS,
    rounds: ROUNDS,
    perRecord: summary(perRecord),
    perMap: summary(perMap),
  };
  console.log(
    `grid memory: ${result.perRecord.bytes.toFixed(0)} B per record, ${result.perMap.bytes.toFixed(0)} B per one-record map (medians of ${ROUNDS})`,
  );
  mkdirSync(dirname(OUT), { recursive: true });
  const others = existsSync(OUT) ? (JSON.parse(readFileSync(OUT, 'utf8')) as object) : {};
  writeFileSync(OUT, `${JSON.stringify({ ...others, [LABEL]: result }, null, 2)}\n`);
  console.log(`wrote ${OUT}`);
} finally {
  await storage.close();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
