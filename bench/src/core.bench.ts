/**
 * Core benchmarks, TopGun side by side with Yjs, TinyBase (MergeableStore) and Automerge in
 * one process: local writes, merging a full remote state, reconciliation bytes and round
 * trips, memory per record. Prints a table and writes `results/core.json`.
 * Run with `pnpm bench` (needs `--expose-gc`, which the script passes).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as Automerge from '@automerge/automerge';
import {
  encodeMessage,
  HLC,
  LWWMap,
  type LWWRecord,
  rootHashHex,
  type SyncMessage,
  SyncSession,
  toSyncWire,
  toWireEntry,
} from '@topgun/core';
import { pack } from 'msgpackr';
import { createMergeableStore } from 'tinybase';
import * as Y from 'yjs';
import { formatRate, machineInfo, medianMs, retainedBytes } from './measure.js';
import { keyOf, type Todo, todoOf } from './workload.js';

const N = Number(process.env['BENCH_N'] ?? 100_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);
const AUTOMERGE_N = Math.min(N, 5_000); // one change per write is slow: fewer writes, same rate
const CHANGED = 100;

// Importing Automerge starts compiling its WebAssembly on background threads, which on a
// 2-core machine would slow whatever is measured first: let that finish.
await new Promise((resolve) => setTimeout(resolve, 3_000));

const keys = Array.from({ length: N }, (_, i) => keyOf(i));
const todos = Array.from({ length: N }, (_, i) => todoOf(i));

function topgunMap(nodeId: string): LWWMap<Todo> {
  return new LWWMap<Todo>(new HLC({ nodeId }));
}

function fillTopgun(map: LWWMap<Todo>, count = N): LWWMap<Todo> {
  for (let i = 0; i < count; i++) map.set(keys[i]!, todos[i]!);
  return map;
}

function fillYjs(count = N): Y.Doc {
  const doc = new Y.Doc();
  const map = doc.getMap<Todo>('todos');
  for (let i = 0; i < count; i++) map.set(keys[i]!, todos[i]!);
  return doc;
}

function fillTinybase(count = N) {
  const store = createMergeableStore('tb-a');
  for (let i = 0; i < count; i++) store.setRow('todos', keys[i]!, { ...todos[i]! });
  return store;
}

function fillAutomergeBatched(count = N) {
  return Automerge.change(Automerge.from<{ todos: Record<string, Todo> }>({ todos: {} }), (doc) => {
    for (let i = 0; i < count; i++) doc.todos[keys[i]!] = { ...todos[i]! };
  });
}

type Row = { workload: string; library: string; figure: string; value: number; unit: string };
const rows: Row[] = [];
function record(
  workload: string,
  library: string,
  value: number,
  unit: string,
  figure = value.toFixed(1),
) {
  rows.push({ workload, library, figure, value, unit });
  console.log(`${workload.padEnd(34)} ${library.padEnd(30)} ${figure}`);
}

// 1. Local writes into an empty map.
{
  const workload = `local writes (N=${N})`;
  const rate = (count: number, ms: number) => count / (ms / 1000);
  let map: LWWMap<Todo> | undefined;
  const topgun = rate(
    N,
    medianMs(
      ROUNDS,
      () => fillTopgun(map!),
      () => (map = topgunMap('bench-a')),
    ),
  );
  record(workload, 'TopGun LWWMap.set + Merkle', topgun, 'ops/s', formatRate(topgun));
  const yjs = rate(
    N,
    medianMs(ROUNDS, () => fillYjs()),
  );
  record(workload, 'Yjs Y.Map.set', yjs, 'ops/s', formatRate(yjs));
  const yjsBatched = rate(
    N,
    medianMs(ROUNDS, () => {
      const doc = new Y.Doc();
      const ymap = doc.getMap<Todo>('todos');
      doc.transact(() => {
        for (let i = 0; i < N; i++) ymap.set(keys[i]!, todos[i]!);
      });
    }),
  );
  record(workload, 'Yjs Y.Map.set (one transaction)', yjsBatched, 'ops/s', formatRate(yjsBatched));
  const tinybase = rate(
    N,
    medianMs(Math.min(ROUNDS, 3), () => fillTinybase()),
  );
  record(workload, 'TinyBase MergeableStore.setRow', tinybase, 'ops/s', formatRate(tinybase));
  const automerge = rate(
    AUTOMERGE_N,
    medianMs(Math.min(ROUNDS, 3), () => {
      let doc = Automerge.from<{ todos: Record<string, Todo> }>({ todos: {} });
      for (let i = 0; i < AUTOMERGE_N; i++) {
        doc = Automerge.change(doc, (draft) => {
          draft.todos[keys[i]!] = { ...todos[i]! };
        });
      }
    }),
  );
  record(workload, 'Automerge change per write', automerge, 'ops/s', formatRate(automerge));
}

// 2. Merge a full remote state of N records into an empty replica.
{
  const workload = `merge full remote state (N=${N})`;
  const source = fillTopgun(topgunMap('bench-a'));
  const remote = [...source.allRecords()];
  let target: LWWMap<Todo> | undefined;
  const topgun = medianMs(
    ROUNDS,
    () => {
      for (const [key, rec] of remote) target!.merge(key, rec);
    },
    () => (target = topgunMap('bench-b')),
  );
  if (target!.size !== N) throw new Error('TopGun merge lost records');
  record(workload, 'TopGun LWWMap.merge', topgun, 'ms');
  const yjsUpdate = Y.encodeStateAsUpdate(fillYjs());
  const yjs = medianMs(ROUNDS, () => Y.applyUpdate(new Y.Doc(), yjsUpdate));
  record(workload, 'Yjs applyUpdate', yjs, 'ms');
  const tinybaseContent = fillTinybase().getMergeableContent();
  const tinybase = medianMs(Math.min(ROUNDS, 3), () =>
    createMergeableStore('tb-b').applyMergeableChanges(tinybaseContent),
  );
  record(workload, 'TinyBase applyMergeableChanges', tinybase, 'ms');
  const automergeSource = fillAutomergeBatched();
  const automerge = medianMs(Math.min(ROUNDS, 3), () =>
    Automerge.merge(Automerge.init<{ todos: Record<string, Todo> }>(), automergeSource),
  );
  record(workload, 'Automerge merge', automerge, 'ms');
}

// 3. Reconciliation of two N-record replicas that differ in 100 keys.
{
  const workload = `reconcile, ${CHANGED} of N differ`;
  /** Sizes are those of the real protocol frames (`sync` messages, MessagePack). */
  const wireRecord = ([key, rec]: readonly [string, LWWRecord<Todo>]) => toWireEntry(key, rec);
  const wireBytes = (message: SyncMessage<Todo>) =>
    encodeMessage(toSyncWire('todos', 1, message)).length;

  for (const width of [4, 8] as const) {
    const server = fillTopgun(topgunMap('server'));
    const client = topgunMap('client');
    for (const [key, rec] of server.allRecords()) client.merge(key, rec);
    const changedRecords: Array<readonly [string, LWWRecord<Todo>]> = [];
    for (let i = 0; i < CHANGED; i++) {
      const index = Math.floor((i * N) / CHANGED);
      const key = keys[index]!;
      changedRecords.push([key, server.set(key, { ...todos[index]!, done: !todos[index]!.done })]);
    }
    const recordBytes = changedRecords.reduce(
      (sum, entry) => sum + pack(wireRecord(entry)).length,
      0,
    );

    let bytes = 0;
    let messages = 0;
    const replicas = [client, server] as const;
    const sessions = [new SyncSession(client, { width }), new SyncSession(server)] as const;
    let sender = 0;
    let message: SyncMessage<Todo> | undefined = sessions[0].open();
    while (message !== undefined) {
      bytes += wireBytes(message);
      messages++;
      const receiver = 1 - sender;
      for (const [key, rec] of message.records) replicas[receiver]!.merge(key, rec);
      const answer = sessions[receiver]!.receive(message);
      message = answer.message && {
        ...answer.message,
        records: [...answer.message.records, ...sessions[receiver]!.bulkRecords(answer.bulk)],
      };
      sender = receiver;
    }
    if (rootHashHex(client.merkleTree) !== rootHashHex(server.merkleTree))
      throw new Error('reconciliation did not converge');
    // `sender` is now the side with nothing to answer; it says so (`sync_done`). When that is
    // the responder, the initiator has to wait for it: one more message on its clock.
    bytes += encodeMessage({
      type: 'sync_done',
      map: 'todos',
      session: 1,
      root: replicas[sender]!.merkleTree.childHashes([], 4).subarray(0, 8),
    }).length;
    if (sender === 1) messages++;
    const roundTrips = Math.ceil(messages / 2);
    const budget = 3 * recordBytes + 2048;
    record(workload, `TopGun Merkle walk, width ${width}: bytes`, bytes, 'bytes', `${bytes} B`);
    record(
      workload,
      `TopGun width ${width}: round trips`,
      roundTrips,
      'round trips',
      String(roundTrips),
    );
    record(
      workload,
      `budget 3 x record bytes + 2 KB`,
      budget,
      'bytes',
      `${budget} B (records ${recordBytes} B)`,
    );
  }
  // Yjs for reference: a state vector and the update it calls for, one round trip.
  const docA = fillYjs();
  const docB = new Y.Doc();
  Y.applyUpdate(docB, Y.encodeStateAsUpdate(docA));
  const mapA = docA.getMap<Todo>('todos');
  for (let i = 0; i < CHANGED; i++) {
    const index = Math.floor((i * N) / CHANGED);
    mapA.set(keys[index]!, { ...todos[index]!, done: !todos[index]!.done });
  }
  const vector = Y.encodeStateVector(docB);
  const update = Y.encodeStateAsUpdate(docA, vector);
  const yjsBytes = vector.length + update.length;
  record(workload, 'Yjs state vector + update: bytes', yjsBytes, 'bytes', `${yjsBytes} B`);
}

// 4. Memory per record.
{
  const workload = `memory per record (N=${N})`;
  const perRecord = (bytes: number, count = N) => bytes / count;
  const topgun = perRecord(retainedBytes(() => fillTopgun(topgunMap('mem'), N)));
  record(workload, 'TopGun LWWMap + Merkle', topgun, 'bytes', `${topgun.toFixed(0)} B`);
  const yjs = perRecord(retainedBytes(() => fillYjs()));
  record(workload, 'Yjs Y.Map', yjs, 'bytes', `${yjs.toFixed(0)} B`);
  const tinybase = perRecord(retainedBytes(() => fillTinybase()));
  record(workload, 'TinyBase MergeableStore', tinybase, 'bytes', `${tinybase.toFixed(0)} B`);
  const automerge = perRecord(retainedBytes(() => fillAutomergeBatched()));
  record(
    workload,
    'Automerge (heap + wasm memory)',
    automerge,
    'bytes',
    `${automerge.toFixed(0)} B`,
  );
}

// Ratios: how many times better TopGun is than each peer (above 1 = TopGun better).
const lowerIsBetter = new Set(['ms', 'bytes']);
const ratios = rows
  .filter((row) => !row.library.startsWith('TopGun') && !row.library.startsWith('budget'))
  .flatMap((peer) => {
    const ours = rows.find(
      (row) =>
        row.workload === peer.workload &&
        row.library.startsWith('TopGun') &&
        row.unit === peer.unit,
    );
    if (ours === undefined) return [];
    const ratio = lowerIsBetter.has(peer.unit) ? peer.value / ours.value : ours.value / peer.value;
    return [{ workload: peer.workload, versus: peer.library, ratio: Number(ratio.toFixed(2)) }];
  });
console.log('\nTopGun versus each peer (x times better):');
for (const { workload, versus, ratio } of ratios)
  console.log(`  ${workload.padEnd(34)} ${versus.padEnd(44)} ${ratio}x`);

const figure = (workload: string, library: string) =>
  rows.find((row) => row.workload.startsWith(workload) && row.library.startsWith(library))?.value ??
  Number.NaN;
const writes = figure('local writes', 'TopGun');
const walkBytes = figure('reconcile', 'TopGun Merkle walk, width 4');
const walkBudget = figure('reconcile', 'budget');
const targets = [
  { target: 'local writes >= 1,000,000/s', met: writes >= 1e6, value: formatRate(writes) },
  {
    target: 'local writes >= 3x Yjs Y.Map.set',
    met: writes >= 3 * figure('local writes', 'Yjs Y.Map.set'),
    value: `${(writes / figure('local writes', 'Yjs Y.Map.set')).toFixed(2)}x`,
  },
  {
    target: 'merge of N remote records < 150 ms',
    met: figure('merge full', 'TopGun') < 150,
    value: `${figure('merge full', 'TopGun').toFixed(1)} ms`,
  },
  {
    target: 'reconcile bytes <= 3 x records + 2 KB',
    met: walkBytes <= walkBudget,
    value: `${walkBytes} B of ${walkBudget} B`,
  },
  {
    target: 'reconcile round trips <= 4',
    met: figure('reconcile', 'TopGun width 4: round trips') <= 4,
    value: String(figure('reconcile', 'TopGun width 4: round trips')),
  },
];
console.log('\nTargets:');
for (const { target, met, value } of targets)
  console.log(`  ${met ? 'MET    ' : 'NOT MET'} ${target.padEnd(42)} ${value}`);

const results = { machine: machineInfo(), n: N, rounds: ROUNDS, rows, ratios, targets };
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'core.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwrote ${out}`);
