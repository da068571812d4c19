import {
  EMPTY_WRITE_TIMESTAMP,
  encodeValue,
  formatTimestamp,
  type Timestamp,
  type Value,
  withFieldWrites,
} from '@topgun/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOUNCEMENT_CHANNEL, parseAnnouncement } from '../src/storage/announcementPayload.js';
import { createPgAnnouncementChannel } from '../src/storage/pgAnnouncementChannel.js';
import { createPgDriver } from '../src/storage/pgDriver.js';
import { SqlStorage } from '../src/storage/sqlStorage.js';
import type {
  AnnouncedRecord,
  AnnouncementChannel,
  RecordWrite,
  StoredRecord,
} from '../src/storage/storage.js';
import { createTestDatabase, postgresAvailable } from './postgres.js';

const available = await postgresAvailable();
const at = (millis: number, counter = 0): Timestamp => ({ millis, counter, nodeId: 'writer' });

describe.runIf(available)('announcements of committed writes over PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let storage: SqlStorage;
  let channel: AnnouncementChannel;
  /** Another process: a channel of its own, listening. */
  let other: AnnouncementChannel;
  const received: AnnouncedRecord[] = [];
  const marks: number[] = [];
  /** Raw payloads, as a plain listener sees them. */
  const payloads: string[] = [];
  let raw: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    channel = createPgAnnouncementChannel(database.url);
    storage = new SqlStorage(createPgDriver({ connectionString: database.url }), {
      announcements: channel,
    });
    await storage.migrate();
    other = createPgAnnouncementChannel(database.url);
    await other.listen({
      onRecords: (announcement) => received.push(...announcement.records),
      onMark: (mark) => marks.push(mark),
      onLost: (error) => {
        throw error;
      },
    });
    raw = new pg.Client({ connectionString: database.url });
    await raw.connect();
    raw.on('notification', ({ payload }) => payloads.push(payload ?? ''));
    await raw.query(`LISTEN ${ANNOUNCEMENT_CHANNEL}`);
  });
  afterAll(async () => {
    await raw.end();
    await other.close();
    await storage.close();
    await database.drop();
  });

  /**
   * Waits until the other process has heard its own marker, and the raw listener too (it
   * reads on a connection of its own): everything before the marker arrived at both.
   */
  async function settle(): Promise<void> {
    const mark = marks.length + 1000;
    await other.mark(mark, Date.now());
    const deadline = Date.now() + 5_000;
    const rawHeard = () => payloads.some((payload) => payload.includes(`"m":${mark}`));
    while (!marks.includes(mark) || !rawHeard()) {
      if (Date.now() > deadline) throw new Error('the marker did not come back');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  function take(): AnnouncedRecord[] {
    return received.splice(0);
  }

  it('announces exactly the stored records, in notifications under 8,000 bytes', async () => {
    payloads.length = 0;
    const writes: RecordWrite[] = Array.from({ length: 3_000 }, (_, index) => ({
      map: index % 2 === 0 ? 'even' : 'odd',
      key: `key-${index}-${'é'.repeat(index % 40)}`,
      record:
        index % 7 === 0
          ? { value: null, timestamp: at(1_000 + index) }
          : index % 5 === 0
            ? { value: { n: index, tags: ['a', 'b'] }, timestamp: at(1_000 + index), ttlMs: 60_000 }
            : { value: { n: index }, timestamp: at(1_000 + index) },
    }));
    expect((await storage.writeRecords(writes)).every((outcome) => outcome.stored)).toBe(true);
    await settle();
    const announced = take();
    expect(announced).toHaveLength(writes.length);
    const byKey = new Map(
      announced.map((record) => [`${record.map}/${record.key}`, record] as const),
    );
    for (const write of writes) {
      const record = byKey.get(`${write.map}/${write.key}`);
      expect(record && 'stored' in record ? record.stored.record : undefined).toEqual(write.record);
    }
    // Several notifications, each under PostgreSQL's limit.
    const ours = payloads.filter((payload) => payload.includes('"r":['));
    expect(ours.length).toBeGreaterThan(10);
    for (const payload of ours) expect(Buffer.byteLength(payload)).toBeLessThan(8_000);
  });

  it('names a record too large to announce, without its value, for the receiver to read back', async () => {
    const big: Value = { blob: 'x'.repeat(20_000) };
    await storage.writeRecords([
      { map: 'large', key: 'big', record: { value: big, timestamp: at(5_000) } },
      { map: 'large', key: 'small', record: { value: 1, timestamp: at(5_000) } },
    ]);
    await settle();
    const announced = take();
    expect(announced).toContainEqual({
      map: 'large',
      key: 'big',
      timestamp: formatTimestamp(at(5_000)),
    });
    expect(announced).toContainEqual({
      map: 'large',
      key: 'small',
      stored: { key: 'small', record: { value: 1, timestamp: at(5_000) } },
    });
  });

  it('announces nothing for writes that lost, and the prior value of a tombstone that kept it', async () => {
    await storage.writeRecords([
      { map: 'rules', key: 'k', record: { value: 'newer', timestamp: at(9_000) } },
    ]);
    await settle();
    take();
    // Older: loses to the stored record. Newer, but conditional on another stored record.
    const older = await storage.writeRecords([
      { map: 'rules', key: 'k', record: { value: 'older', timestamp: at(8_000) } },
    ]);
    const conditional = await storage.writeRecords([
      {
        map: 'rules',
        key: 'k',
        record: { value: 'x', timestamp: at(9_500) },
        expected: formatTimestamp(at(1)),
      },
    ]);
    expect([...older, ...conditional].map((outcome) => outcome.stored)).toEqual([false, false]);
    const deletion = await storage.writeRecords([
      {
        map: 'rules',
        key: 'k',
        record: { value: null, timestamp: at(10_000) },
        expected: formatTimestamp(at(9_000)),
        keepPrior: true,
      },
    ]);
    expect(deletion).toEqual([{ stored: true, prior: 'newer' }]);
    await settle();
    const expected: StoredRecord = {
      key: 'k',
      record: { value: null, timestamp: at(10_000) },
      prior: 'newer',
    };
    expect(take()).toEqual([{ map: 'rules', key: 'k', stored: expected }]);
  });

  it('announces the merged record of an update, and by its latest write when too large', async () => {
    const update = (
      key: string,
      fields: Record<string, Value>,
      timestamp: Timestamp,
    ): RecordWrite => ({
      map: 'fielded',
      key,
      record: withFieldWrites(
        { value: null, timestamp: EMPTY_WRITE_TIMESTAMP },
        Object.fromEntries(
          Object.entries(fields).map(([name, value]) => [name, { timestamp, value }]),
        ),
      ),
    });
    await storage.writeRecords([
      {
        map: 'fielded',
        key: 't',
        record: { value: { title: 'a', done: false }, timestamp: at(30_000) },
      },
      { map: 'fielded', key: 'big', record: { value: { title: 'b' }, timestamp: at(30_000) } },
    ]);
    await settle();
    take();
    const [outcome] = await storage.writeRecords([update('t', { done: true }, at(30_001))]);
    await settle();
    const [announced] = take();
    expect(announced).toEqual({
      map: 'fielded',
      key: 't',
      stored: { key: 't', record: outcome!.record },
    });
    expect(outcome!.record!.value).toEqual({ title: 'a', done: true });
    // Too large: named with the timestamp of its latest write (the update's), not its whole write's.
    await storage.writeRecords([update('big', { blob: 'x'.repeat(20_000) }, at(30_002))]);
    await settle();
    expect(take()).toEqual([
      { map: 'fielded', key: 'big', timestamp: formatTimestamp(at(30_002)) },
    ]);
  });

  it('does not deliver a process its own announcements', async () => {
    const own: AnnouncedRecord[] = [];
    const ownMarks: number[] = [];
    await channel.listen({
      onRecords: (announcement) => own.push(...announcement.records),
      onMark: (mark) => ownMarks.push(mark),
      onLost: (error) => {
        throw error;
      },
    });
    await storage.writeRecords([
      { map: 'mine', key: 'k', record: { value: 1, timestamp: at(20_000) } },
    ]);
    await channel.mark(7, Date.now());
    const deadline = Date.now() + 5_000;
    while (!ownMarks.includes(7) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(ownMarks).toEqual([7]);
    expect(own).toEqual([]);
    await settle();
    expect(take().map((record) => record.key)).toEqual(['k']);
  });

  it('reads the payloads PostgreSQL builds, and refuses what is not an announcement', () => {
    expect(
      parseAnnouncement(
        '{"o":"ab","t":5,"r":[["m", "k\\"1", "0000000003e80000w", "AQ==", null, null, null],["m", "k2", "0000000003e80000w"],' +
          `["m", "k3", "", null, null, null, "${Buffer.from(encodeValue({ done: ['0000000003e80000w', true] })).toString('base64')}"]]}`,
      ),
    ).toMatchObject({
      origin: 'ab',
      sentAt: 5,
      records: [
        { map: 'm', key: 'k"1', stored: { key: 'k"1', record: { value: 1 } } },
        { map: 'm', key: 'k2', timestamp: '0000000003e80000w' },
        {
          map: 'm',
          key: 'k3',
          stored: {
            key: 'k3',
            record: { value: null, fields: { done: { value: true, timestamp: { millis: 1000 } } } },
          },
        },
      ],
    });
    expect(parseAnnouncement('{"o":"ab","t":5,"m":3}')).toEqual({
      origin: 'ab',
      sentAt: 5,
      mark: 3,
    });
    for (const junk of ['hello', '{"o":1}', '{"o":"a","t":1,"r":[["m"]]}', '{"o":"a","t":1}'])
      expect(() => parseAnnouncement(junk)).toThrow();
  });
});
