import { type AggregateQuery, evaluateAggregate } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import type { AggregateHandle } from '../src/index.js';
import { contents, testClient, useServer, waitFor } from './harness.js';

interface Event {
  kind: 'even' | 'odd';
  at: number;
}

const BY_KIND: AggregateQuery<Event> = {
  groupBy: { kind: 'kind' },
  aggregate: { n: 'count', total: { sum: 'at' } },
  sort: [{ field: 'n', direction: 'desc' }],
};

const figures = (handle: AggregateHandle<Event>) =>
  handle.getSnapshot().data.map(({ value }) => value);

describe('aggregates of a map replicated by query, against a real server', () => {
  const served = useServer();

  it('are the server’s: live across writers, local while offline, synced again on reconnect', async () => {
    const writer = testClient(served.url).client;
    const events = writer.getMap<Event>('events');
    for (let n = 0; n < 30; n++) events.set(`e${n}`, { kind: n % 3 ? 'odd' : 'even', at: n });
    await writer.flush();

    const { client: reader, online } = testClient(served.url, {
      maps: { events: { replicate: 'queries', maxRecords: 10 } },
    });
    served.clients.push(writer, reader);
    const handle = reader.aggregate<Event>('events', BY_KIND);
    const told: unknown[] = [];
    const stop = handle.subscribe(() => told.push(handle.getSnapshot()));
    await waitFor(() => handle.getSnapshot().status === 'synced', 5_000, 'the result');
    const expected = () =>
      evaluateAggregate(BY_KIND, contents(writer, 'events') as [string, Event][]);
    expect(handle.getSnapshot().data).toEqual(expected());
    // Counted by the server: the reader holds none of the records.
    expect(reader.getMap('events').size).toBe(0);

    events.set('e0', { kind: 'odd', at: 100 });
    await writer.flush();
    await waitFor(() => figures(handle)[0]?.['n'] === 21, 5_000, 'the change');
    expect(handle.getSnapshot().data).toEqual(expected());

    online.set(false);
    await waitFor(() => handle.getSnapshot().status === 'local', 5_000, 'local while offline');
    const offline = handle.getSnapshot().data;
    expect(offline).toEqual(expected());
    const odd = offline.find((row) => row.key === '["odd"]');
    events.delete('e3');
    events.set('e40', { kind: 'even', at: 40 });
    await writer.flush();
    online.set(true);
    await waitFor(
      () =>
        handle.getSnapshot().status === 'synced' &&
        figures(handle)[1]?.['total'] !== offline[1]?.value['total'],
      5_000,
      'synced again',
    );
    expect(handle.getSnapshot().data).toEqual(expected());
    // The result is sent whole again on reconnect: a group whose figures did not change
    // keeps its row.
    expect(handle.getSnapshot().data.find((row) => row.key === '["odd"]')).toBe(odd);
    expect(told.length).toBeGreaterThan(3);
    stop();
  });

  it('reports what the server refuses as its error', async () => {
    const { client: reader } = testClient(served.url, {
      maps: { big: { replicate: 'queries', maxRecords: 10 } },
    });
    const writer = testClient(served.url).client;
    served.clients.push(writer, reader);
    const big = writer.getMap<{ n: number }>('big');
    for (let n = 0; n < 10_001; n++) big.set(`b${n}`, { n });
    await writer.flush();
    const handle = reader.aggregate<{ n: number }>('big', {
      groupBy: { n: 'n' },
      aggregate: { c: 'count' },
    });
    const stop = handle.subscribe(() => {});
    await waitFor(() => handle.getSnapshot().error !== null, 10_000, 'the refusal');
    expect(handle.getSnapshot().error?.message).toMatch(/more than 10000 groups/);
    stop();
  });
});
