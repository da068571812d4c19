import { formatTimestamp, type Value } from '@topgun/core';
import { describe, expect, it, vi } from 'vitest';
import { createPgDriver } from '../../src/storage/pgDriver.js';
import { SqlArray, type SqlDriver, type SqlExecutor } from '../../src/storage/sqlDriver.js';
import { SqlStorage } from '../../src/storage/sqlStorage.js';
import { WritePipeline } from '../../src/writePipeline.js';
import { postgresAvailable } from '../postgres.js';
import { eventually, startServer } from '../serverHarness.js';
import { TestClient } from '../testClient.js';
import { TOKEN_SECRET, tokenFor, usePostgresDatabase } from './adversarialKit.js';

const available = await postgresAvailable();

/**
 * A key of `length` distinct-looking CJK characters (3 bytes each in UTF-8): varied, so that
 * PostgreSQL cannot compress it below its B-tree row limit.
 */
function cjkKey(length: number): string {
  return Array.from({ length }, (_, index) =>
    String.fromCharCode(0x4e00 + ((index * 7919) % 20_000)),
  ).join('');
}

/** The error a PostgreSQL driver raises for a value it cannot store (invalid byte sequence). */
function dataError(): Error {
  return Object.assign(new Error('invalid byte sequence for encoding "UTF8"'), { code: '22021' });
}

/**
 * A driver over `driver` that writes one group at a time, holds any INSERT of records that
 * includes `gateKey` until `gate` resolves, and fails with a data error (SQLSTATE 22021) any
 * INSERT that includes `refusedKey`, as PostgreSQL fails a whole statement for one bad row.
 */
function refusingDriver(
  driver: SqlDriver,
  keys: { readonly gateKey: string; readonly refusedKey: string },
  gate: Promise<void>,
): SqlDriver {
  const wrap = (executor: SqlExecutor): SqlExecutor => ({
    async query<Row>(text: string, params?: readonly unknown[]) {
      const written = params?.[1];
      if (text.includes('INSERT INTO topgun_records') && written instanceof SqlArray) {
        if (written.values.includes(keys.gateKey)) await gate;
        if (written.values.includes(keys.refusedKey)) throw dataError();
      }
      return executor.query<Row>(text, params);
    },
    exec: (script) => executor.exec(script),
  });
  return {
    ...wrap(driver),
    description: driver.description,
    concurrency: 1,
    transaction: (work) => driver.transaction((sql) => work(wrap(sql))),
    close: () => driver.close(),
  };
}

// Attack: one record PostgreSQL refuses (a key over its B-tree row limit) used to fail the
// whole group commit it joined, so other users' writes in that group were rejected.
describe.runIf(available)('a record the database refuses', () => {
  const database = usePostgresDatabase();

  it('refuses a 3 KB key at the edge while three other users write unharmed', async () => {
    const { server, url } = await database.startServer({
      auth: { secret: TOKEN_SECRET },
      // The attacker keeps sending for the whole run (it could use many connections).
      limits: { maxViolations: 1_000 },
    });
    const attacker = await TestClient.connect(url, await tokenFor('mallory'));
    const users = await Promise.all(
      ['ann', 'ben', 'cy'].map(async (name) => TestClient.connect(url, await tokenFor(name))),
    );
    const key = cjkKey(1024);
    expect(Buffer.byteLength(key)).toBe(3072);

    const rounds = 30;
    const attack = async () => {
      for (let round = 0; round < rounds; round++) {
        attacker.send({
          type: 'ops',
          ops: [
            {
              id: round,
              map: 'shared',
              entry: [key, formatTimestamp(attacker.hlc.now()), 'x'],
            },
          ],
        });
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const write = (user: TestClient, round: number) =>
      user.write(
        'shared',
        Array.from(
          { length: 5 },
          (_, index) => [`${user.nodeId}-${round}-${index}`, { round, index }] as [string, Value],
        ),
      );
    const [, ...answers] = await Promise.all([
      attack(),
      ...users.flatMap((user) => Array.from({ length: rounds }, (_, round) => write(user, round))),
    ]);

    const rejectedByReason: Record<string, number> = {};
    for (const { reason } of answers.flatMap((answer) => answer?.reject?.rejections ?? []))
      rejectedByReason[reason] = (rejectedByReason[reason] ?? 0) + 1;
    expect(rejectedByReason).toEqual({});
    const acked = answers.flatMap((answer) => answer?.ack?.ids ?? []);
    expect(acked).toHaveLength(users.length * rounds * 5);
    await eventually(() => attacker.pending('error').length === rounds);
    expect(attacker.pending('error').every((error) => error.code === 'MALFORMED')).toBe(true);
    expect(attacker.pending('ack')).toEqual([]);
    expect(attacker.pending('reject')).toEqual([]);
    expect(await server.storage.getRecords('shared', [key])).toEqual([]);
    expect((await fetch(`${url}/ready`)).status).toBe(200);
    for (const client of [attacker, ...users]) client.close();
    await server.close();
  });

  it('rejects only the record the database refuses; the rest of its group is stored', async () => {
    const keys = { gateKey: 'gate', refusedKey: 'refused-by-the-database' };
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const storage = new SqlStorage(
      refusingDriver(createPgDriver({ connectionString: database.url }), keys, gate),
    );
    const submitted = vi.spyOn(WritePipeline.prototype, 'submit');
    const { server, url } = await startServer({ storage, auth: { allowAnonymous: true } });
    try {
      const holder = await TestClient.connect(url);
      const sender = await TestClient.connect(url);
      const others = await Promise.all([0, 1, 2].map(() => TestClient.connect(url)));

      // The only write slot is held until every batch below is queued: they commit as one group.
      const held = holder.write('group', [[keys.gateKey, 0]]);
      await eventually(() => submitted.mock.calls.length === 1);
      const mixed = sender.write('group', [
        ['before', 1],
        [keys.refusedKey, 2],
        ['after', 3],
      ]);
      const bystanders = others.map((client) => client.write('group', [[client.nodeId, 4]]));
      await eventually(() => submitted.mock.calls.length === 5);
      open();

      expect((await held).ack?.ids).toHaveLength(1);
      const answer = await mixed;
      expect(answer.ack?.ids).toEqual([answer.ids[0], answer.ids[2]]);
      expect(answer.reject?.rejections).toEqual([
        expect.objectContaining({ id: answer.ids[1], reason: 'VALIDATION', retryable: false }),
      ]);
      for (const bystander of await Promise.all(bystanders)) {
        expect(bystander.reject).toBeUndefined();
        expect(bystander.ack?.ids).toEqual(bystander.ids);
      }
      const stored = await storage.getRecords('group', [
        'before',
        keys.refusedKey,
        'after',
        ...others.map((client) => client.nodeId),
      ]);
      expect(stored.map(({ key }) => key).sort()).toEqual(
        ['before', 'after', ...others.map((client) => client.nodeId)].sort(),
      );
      for (const client of [holder, sender, ...others]) client.close();
    } finally {
      submitted.mockRestore();
      open();
      await server.close();
      await storage.close();
    }
  });
});
