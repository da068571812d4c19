import { toWireEntry } from '@topgun/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type RejectedWrite, type TopGunClient } from '../src/index.js';
import { FakeTransport, overFakeTransport } from './fakeTransport.js';

interface Todo {
  title: string;
}

const clients: TopGunClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

/** A client whose server is the test, through a fake transport. */
function clientOverFakeTransport() {
  const transport = new FakeTransport();
  const client = createClient(overFakeTransport(transport));
  clients.push(client);
  return { client, transport, todos: client.getMap<Todo>('todos') };
}

describe('the client over a transport, with the test as its server', () => {
  it('settles each write once, whatever the order of the acks and however often one comes', async () => {
    const { client, transport, todos } = clientOverFakeTransport();
    const connection = await transport.connection(0);
    await connection.welcome();
    await connection.endWalk();
    todos.set('a', { title: 'A' });
    todos.set('b', { title: 'B' });
    todos.set('c', { title: 'C' });
    const { ops } = await connection.next('ops');
    expect(ops.map((op) => op.entry[0])).toEqual(['a', 'b', 'c']);
    const [a, b, c] = ops.map((op) => op.id);
    const flushed = client.flush();
    const pending = () => client.status.getState().pendingOps;
    expect(pending()).toBe(3);
    connection.receive({ type: 'ack', ids: [c!], superseded: [] });
    expect(pending()).toBe(2);
    connection.receive({ type: 'ack', ids: [a!], superseded: [] });
    connection.receive({ type: 'ack', ids: [a!, c!], superseded: [] });
    expect(pending()).toBe(1);
    connection.receive({ type: 'ack', ids: [b!], superseded: [] });
    await flushed;
    expect(pending()).toBe(0);
    expect(todos.get('b')).toEqual({ title: 'B' });
  });

  it('rolls a refused write back to the server record and reports it once', async () => {
    const { client, transport, todos } = clientOverFakeTransport();
    const rejected: RejectedWrite[] = [];
    client.onRejected((write) => rejected.push(write));
    const connection = await transport.connection(0);
    await connection.welcome();
    await connection.endWalk();
    todos.set('kept', { title: 'mine' });
    todos.set('gone', { title: 'mine' });
    const { ops } = await connection.next('ops');
    const server = {
      value: { title: 'theirs' },
      timestamp: { millis: 1, counter: 0, nodeId: 'x' },
    };
    connection.receive({
      type: 'reject',
      rejections: [
        {
          id: ops[0]!.id,
          reason: 'PERMISSION',
          message: 'read-only',
          retryable: false,
          current: toWireEntry('kept', server),
        },
        { id: ops[1]!.id, reason: 'VALIDATION', message: 'no', retryable: false, current: null },
      ],
    });
    // The same rejection again changes nothing.
    connection.receive({
      type: 'reject',
      rejections: [{ id: ops[1]!.id, reason: 'VALIDATION', message: 'no', retryable: false }],
    });
    expect(todos.get('kept')).toEqual({ title: 'theirs' });
    expect(todos.has('gone')).toBe(false);
    expect(rejected.map(({ key, reason }) => [key, reason])).toEqual([
      ['kept', 'PERMISSION'],
      ['gone', 'VALIDATION'],
    ]);
    expect(client.status.getState().pendingOps).toBe(0);
  });

  it('sends the writes in flight on a dropped connection again on the next, after its walk', async () => {
    const { client, transport, todos } = clientOverFakeTransport();
    const first = await transport.connection(0);
    await first.welcome();
    await first.endWalk();
    todos.set('a', { title: 'A' });
    await first.next('ops');
    first.drop();
    expect(client.status.getState().connection).toBe('offline');
    const second = await transport.connection(1);
    await second.welcome();
    // Nothing is sent again before the map is walked on the new connection.
    expect(second.sent.some((message) => message.type === 'ops')).toBe(false);
    await second.endWalk();
    const { ops } = await second.next('ops');
    expect(ops.map((op) => op.entry[0])).toEqual(['a']);
    const flushed = client.flush();
    second.receive({ type: 'ack', ids: [ops[0]!.id], superseded: [] });
    await flushed;
    expect(client.status.getState().pendingOps).toBe(0);
  });
});
