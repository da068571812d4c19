import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { gatherWritesOfTurn } from '../src/gatherWrites.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A connected pair of TCP sockets on the loopback interface. */
async function socketPair(): Promise<{ writer: Socket; reader: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const accepted = once(server, 'connection');
  const writer = connect(address.port, '127.0.0.1');
  await once(writer, 'connect');
  const [reader] = (await accepted) as [Socket];
  closers.push(() => {
    writer.destroy();
    reader.destroy();
    server.close();
  });
  return { writer, reader };
}

describe('gathering the writes of one turn', () => {
  it('holds every write of the turn and sends them together at its end', async () => {
    const { writer, reader } = await socketPair();
    const received: Buffer[] = [];
    reader.on('data', (chunk: Buffer) => received.push(chunk));
    for (const frame of ['a', 'b', 'c']) {
      gatherWritesOfTurn(writer);
      writer.write(frame);
    }
    // Held once, however many frames: all of them wait in the socket's buffer this turn.
    expect(writer.writableCorked).toBe(1);
    expect(writer.writableLength).toBe(3);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(writer.writableCorked).toBe(0);
    const deadline = Date.now() + 2_000;
    while (Buffer.concat(received).length < 3 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(Buffer.concat(received).toString()).toBe('abc');
  });

  it('leaves a destroyed socket alone', async () => {
    const { writer } = await socketPair();
    writer.destroy();
    gatherWritesOfTurn(writer);
    expect(writer.writableCorked).toBe(0);
  });
});
