#!/usr/bin/env node
// @ts-check
/**
 * Seeds the demo's `events` map (its Activity view) with generated events, written through
 * the server's own storage (`Storage.writeRecords`: Last-Write-Wins in SQL, as the server
 * stores clients' writes), each stamped by a real HLC, so clients sync them like any other.
 *
 *   node scripts/seed-events.mjs [count]     # default 1,000,000
 *
 * Where: PostgreSQL at `DATABASE_URL` when set (running servers hear of the records through
 * the database), else the PGlite directory `npm start` uses (`packages/server/.topgun-data`, or
 * `TOPGUN_DATA_DIR`). PGlite is one process's database: stop the server first. Needs the
 * packages built (`npm start` or `pnpm build` does it).
 */
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { HLC } from '../packages/core/dist/index.js';

/** The map the demo's Activity view reads. */
export const EVENTS_MAP = 'events';
/** Event kinds, as the demo's Activity view lists them (the e2e spec checks they agree). */
export const EVENT_KINDS = /** @type {const} */ ([
  'created',
  'completed',
  'commented',
  'assigned',
  'reopened',
]);
/** The node id seeded records are stamped with, claimed so that no client can use it. */
export const SEED_NODE_ID = 'seed_events';

/** @typedef {(typeof EVENT_KINDS)[number]} EventKind */
/** @typedef {{ at: number, actor: string, kind: EventKind, text: string }} ActivityEvent */
/** @typedef {import('../packages/server/dist/index.js').Storage} Storage */

const ACTORS = ['Ada', 'Bob', 'Chen', 'Dara', 'Eli', 'Fatima', 'Goran', 'Hana', 'Ivo', 'Jun'];
const TITLES = [
  'Plan the offsite',
  'Write the spec',
  'Ship TopGun',
  'Fix the login bug',
  'Review the roadmap',
  'Update the docs',
  'Call the supplier',
  'Book the venue',
  'Prepare the demo',
  'Renew the certificate',
  'Clean up the backlog',
  'Benchmark the server',
];
const COMMENTS = ['looks good', 'can we do it Friday?', 'done on my side', 'needs a test', '+1'];
/** Kinds by weight: comments are the most common, reopenings the rarest. */
const KIND_WEIGHTS = [
  ['commented', 35],
  ['created', 25],
  ['completed', 20],
  ['assigned', 12],
  ['reopened', 8],
];
/** Seconds between seeded events, on average: a million events span about a year. */
const SPACING_MS = 30_000;

/**
 * A well-mixed 32-bit hash of `n` (the same on every run, so events are reproducible).
 * @param {number} n
 */
function mix(n) {
  let x = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Event `index` of `count` seeded at `now`: its key and value. Event `count - 1` is the
 * newest, within 29 s before `now`; each is 1 to 59 s later than the one before, so `at`
 * orders them as their index does.
 * @param {number} index
 * @param {number} count
 * @param {number} now
 * @returns {{ key: string, value: ActivityEvent }}
 */
export function seededEvent(index, count, now) {
  const hash = mix(index);
  let pick = hash % 100;
  let kind = /** @type {EventKind} */ ('commented');
  for (const [name, weight] of KIND_WEIGHTS) {
    if (pick < Number(weight)) {
      kind = /** @type {EventKind} */ (name);
      break;
    }
    pick -= Number(weight);
  }
  const actor = ACTORS[(hash >>> 8) % ACTORS.length] ?? 'Ada';
  const title = `“${TITLES[(hash >>> 12) % TITLES.length]}”`;
  const text =
    kind === 'commented'
      ? `commented on ${title}: ${COMMENTS[(hash >>> 20) % COMMENTS.length]}`
      : kind === 'assigned'
        ? `assigned ${title} to ${ACTORS[(hash >>> 24) % ACTORS.length]}`
        : `${kind} ${title}`;
  return {
    key: `ev-${String(index).padStart(8, '0')}`,
    value: {
      at: now - (count - 1 - index) * SPACING_MS - ((hash >>> 4) % 29_000),
      actor,
      kind,
      text,
    },
  };
}

/**
 * Writes events `0 … count - 1` (see {@link seededEvent}) into `storage`, in batches, as many
 * at once as the storage writes well; claims {@link SEED_NODE_ID} first.
 * @param {Pick<Storage, 'writeRecords' | 'claimNodeId' | 'writeConcurrency'>} storage
 * @param {{ count: number, now?: number, batch?: number,
 *   onProgress?: (written: number) => void }} options
 * @returns {Promise<void>}
 * @throws {Error} when the node id belongs to someone else, or the storage refused a record.
 */
export async function seedEvents(storage, { count, now = Date.now(), batch = 20_000, onProgress }) {
  if (!(await storage.claimNodeId(SEED_NODE_ID, 'topgun:seed', now)))
    throw new Error(`node id ${SEED_NODE_ID} belongs to another user`);
  const hlc = new HLC({ nodeId: SEED_NODE_ID });
  let next = 0;
  let written = 0;
  const worker = async () => {
    while (next < count) {
      const start = next;
      const end = Math.min(count, start + batch);
      next = end;
      /** @type {import('../packages/server/dist/index.js').RecordWrite[]} */
      const writes = [];
      for (let index = start; index < end; index++) {
        const { key, value } = seededEvent(index, count, now);
        writes.push({ map: EVENTS_MAP, key, record: { value, timestamp: hlc.now() } });
      }
      const refused = (await storage.writeRecords(writes)).find((outcome) => outcome.refused);
      if (refused !== undefined) throw new Error(`a record was refused: ${refused.refused}`);
      written += writes.length;
      onProgress?.(written);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, storage.writeConcurrency) }, worker));
}

/** Whether a server answers on this machine's `PORT` (default 8080). */
async function serverAnswers() {
  try {
    await fetch(`http://127.0.0.1:${process.env['PORT'] ?? 8080}/health`, {
      signal: AbortSignal.timeout(1_000),
    });
    return true;
  } catch {
    return false;
  }
}

async function main() {
  const count = Number(process.argv[2] ?? 1_000_000);
  if (!Number.isSafeInteger(count) || count < 1) {
    console.error('usage: node scripts/seed-events.mjs [count]   (default 1000000)');
    process.exit(2);
  }
  const root = fileURLToPath(new URL('..', import.meta.url));
  const databaseUrl = process.env['DATABASE_URL'];
  const dataDir = resolve(
    process.env['TOPGUN_DATA_DIR'] ?? resolve(root, 'packages/server/.topgun-data'),
  );
  if (databaseUrl === undefined && (await serverAnswers())) {
    console.error(
      `seed-events: a server is running on port ${process.env['PORT'] ?? 8080}; stop it first (PGlite is one process's database)`,
    );
    process.exit(1);
  }
  /** @type {typeof import('../packages/server/dist/index.js')} */
  const server = await import(
    pathToFileURL(resolve(root, 'packages/server/dist/index.js')).href
  ).catch(() => {
    console.error('seed-events: build the packages first (pnpm build)');
    process.exit(1);
  });
  const storage = await server.createStorage(
    databaseUrl === undefined
      ? { kind: 'pglite', dataDir }
      : { kind: 'postgres', connectionString: databaseUrl },
  );
  try {
    await storage.migrate();
    console.log(`seeding ${count.toLocaleString('en-US')} events into ${storage.description}`);
    const started = performance.now();
    let shown = 0;
    await seedEvents(storage, {
      count,
      onProgress: (written) => {
        if (written - shown < 50_000 && written < count) return;
        shown = written;
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `  ${written.toLocaleString('en-US')} (${Math.round(written / seconds).toLocaleString('en-US')}/s)`,
        );
      },
    });
    const seconds = (performance.now() - started) / 1000;
    console.log(`seeded ${count.toLocaleString('en-US')} events in ${seconds.toFixed(1)} s`);
  } finally {
    await storage.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  await main();
