/**
 * What the server load benchmarks share: a database per run, server processes started from a
 * built `cli.js`, and CPU and memory figures from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HLC, type Value } from '@topgun/core';
import { createPgDriver, type RecordWrite, SqlStorage } from '@topgun/server';
import pg from 'pg';

const here = dirname(fileURLToPath(import.meta.url));
/** The PostgreSQL the benchmarks create their databases on. */
export const DATABASE =
  process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** This tree's server command. */
export const SERVER_CLI =
  process.env['BENCH_CLI'] ?? join(here, '../../packages/server/dist/cli.js');

/** Creates an empty database for one run (`suffix` tells concurrent ones apart). */
export async function createDatabase(suffix = ''): Promise<string> {
  const name = `topgun_bench_${process.pid}${suffix}`;
  const admin = new pg.Client({ connectionString: DATABASE });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(DATABASE);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops a database {@link createDatabase} made. */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: DATABASE });
  await admin.connect();
  await admin.query(
    `DROP DATABASE IF EXISTS ${new URL(databaseUrl).pathname.slice(1)} WITH (FORCE)`,
  );
  await admin.end();
}

/**
 * Writes `count` records of map `map` straight into the database at `databaseUrl` (record `i`
 * is `entryOf(i)`), stamped by a fresh clock, 10,000 per transaction; resolves how many ms it
 * took.
 */
export async function seedDatabase(
  databaseUrl: string,
  map: string,
  count: number,
  entryOf: (i: number) => readonly [key: string, value: Value],
): Promise<number> {
  const started = performance.now();
  const storage = new SqlStorage(createPgDriver({ connectionString: databaseUrl }));
  try {
    await storage.migrate();
    const hlc = new HLC({ nodeId: 'benchseed' });
    for (let start = 0; start < count; start += 10_000) {
      const writes: RecordWrite[] = [];
      for (let i = start; i < Math.min(count, start + 10_000); i++) {
        const [key, value] = entryOf(i);
        writes.push({ map, key, record: { value, timestamp: hlc.now() } });
      }
      await storage.writeRecords(writes);
    }
  } finally {
    await storage.close();
  }
  return performance.now() - started;
}

/**
 * Starts a server process (`cli`: a built `cli.js`, this tree's by default) on `port`, on the
 * database at `databaseUrl` (undefined: its embedded PGlite), and resolves once `/ready`
 * answers.
 */
export async function startServer(
  databaseUrl: string | undefined,
  port: number,
  cli = SERVER_CLI,
  environment: Record<string, string> = {},
): Promise<ChildProcess> {
  const nodeArgs = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const { DATABASE_URL: _inherited, ...inherited } = process.env;
  const child = spawn(process.execPath, [...nodeArgs, cli], {
    env: {
      ...inherited,
      PORT: String(port),
      HOST: '127.0.0.1',
      ...(databaseUrl === undefined ? {} : { DATABASE_URL: databaseUrl }),
      TOPGUN_ALLOW_ANONYMOUS: '1',
      LOG_LEVEL: 'warn',
      TOPGUN_LIMITS: JSON.stringify({
        upgradesPerSecond: 10_000,
        upgradesBurst: 10_000,
        ...JSON.parse(process.env['BENCH_SERVER_LIMITS'] ?? '{}'),
      }),
      ...environment,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) return child;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the server did not start');
}

/** Stops a server process (SIGTERM) and waits for it to exit. */
export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

function processCpuSeconds(pid: number | string): number {
  const ticks = 100; // USER_HZ on Linux
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) used so far by the server processes (all their threads), by
 * every PostgreSQL process, and by this load generator; zeros where /proc is not available.
 */
export function cpuSeconds(serverPids: readonly number[]) {
  let postgres = 0;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres')
          postgres += processCpuSeconds(pid);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return {
    server: serverPids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0),
    postgres,
    loadGenerator: processCpuSeconds(process.pid),
  };
}

/** Resident memory of a process in MiB (VmRSS), or NaN where /proc is not available. */
export function residentMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** The `p`th percentile of sorted numbers. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
