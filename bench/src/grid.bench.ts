/**
 * The server's in-memory grid at 1 000 000 records: start-up time (loading a map from
 * PostgreSQL into memory with its Merkle tree) and memory per record. Writes
 * `results/grid.json`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HLC, type LWWRecord, type Value } from '@topgun/core';
import {
  createPgDriver,
  MapGrid,
  type RecordWrite,
  ServerMetrics,
  SqlStorage,
} from '@topgun/server';
import pg from 'pg';
import { machineInfo } from './measure.js';

declare const gc: () => void;

const RECORDS = Number(process.env['BENCH_GRID_RECORDS'] ?? 1_000_000);
const DATABASE = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const name = `topgun_grid_${process.pid}`;

const admin = new pg.Client({ connectionString: DATABASE });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(DATABASE);
url.pathname = `/${name}`;
const storage = new SqlStorage(createPgDriver({ connectionString: url.toString() }));
try {
  await storage.migrate();
  const hlc = new HLC({ nodeId: 'bench' });
  const fillStart = performance.now();
  for (let start = 0; start < RECORDS; start += 10_000) {
    const writes: RecordWrite[] = [];
    for (let i = start; i < Math.min(RECORDS, start + 10_000); i++) {
      const record: LWWRecord<Value> = {
        value: { title: `Task number ${i}`, done: i % 3 === 0, n: i },
        timestamp: hlc.now(),
      };
      writes.push({ map: 'todos', key: `todo-${i}`, record });
    }
    await storage.writeRecords(writes);
  }
  console.log(
    `filled ${RECORDS} records in ${((performance.now() - fillStart) / 1000).toFixed(1)} s`,
  );

  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const grid = new MapGrid({
    storage,
    metrics: new ServerMetrics(),
    nodeId: 'bench-server',
    now: Date.now,
  });
  const loadStart = performance.now();
  const map = await grid.get('todos');
  const loadMs = performance.now() - loadStart;
  gc();
  const bytesPerRecord = (process.memoryUsage().heapUsed - heapBefore) / map.size;
  console.log(
    `grid start-up: ${map.size} records loaded in ${(loadMs / 1000).toFixed(2)} s (${Math.round(map.size / (loadMs / 1000))} records/s)`,
  );
  console.log(
    `grid memory: ${bytesPerRecord.toFixed(0)} bytes per record (heap, records + Merkle tree + keys)`,
  );
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'grid.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ machine: machineInfo(), records: map.size, loadMs, bytesPerRecord }, null, 2)}\n`,
  );
  console.log(`wrote ${out}`);
} finally {
  await storage.close();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
