/**
 * The protocol side the server load benchmarks share: a WebSocket client that says hello,
 * walks its (empty) map so that it receives the others' changes to it, and sends batches of
 * ops; what it records of the answers is up to each benchmark.
 */
import {
  encodeMessage,
  HLC,
  LWWMap,
  type Message,
  PROTOCOL_VERSION,
  SyncSession,
  toSyncWire,
} from '@topgun/core';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';

export abstract class LoadClientBase {
  readonly socket: WebSocket;
  readonly hlc: HLC;
  private waiting = new Map<string, (message: Message) => void>();

  constructor(
    url: string,
    readonly index: number,
    /** The map this client writes and follows. */
    readonly map: string,
  ) {
    this.hlc = new HLC({ nodeId: `load-${index}` });
    this.socket = new WebSocket(url);
    this.socket.binaryType = 'nodebuffer';
    // The server's frames are trusted here: plain MessagePack decoding without the schema
    // check keeps the load generator's share of the two cores small.
    this.socket.on('message', (data) => {
      const message = unpack(data as Buffer) as Message;
      this.receive(message);
      const waiter = this.waiting.get(message.type);
      if (waiter !== undefined) {
        this.waiting.delete(message.type);
        waiter(message);
      }
    });
  }

  /** Connects, says hello and walks the map. */
  async start(): Promise<void> {
    await new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('error', reject);
    });
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, nodeId: this.hlc.nodeId });
    await this.wait('welcome');
    this.send(toSyncWire(this.map, 1, new SyncSession(new LWWMap(this.hlc)).open()));
    // The server answers with its (empty) side of the walk; this client has nothing to add.
    await this.wait('sync');
    this.send({ type: 'sync_done', map: this.map, session: 1, root: new Uint8Array(8) });
    await this.wait('sync_done');
  }

  /** Every message from the server, as it arrives. */
  protected abstract receive(message: Message): void;

  protected send(message: Message): void {
    this.socket.send(encodeMessage(message));
  }

  private wait(type: string): Promise<Message> {
    return new Promise((resolve) => this.waiting.set(type, resolve));
  }
}

/**
 * Open-loop load: each client sends a batch at a fixed interval, the clients spread evenly
 * over it, so that `batchesPerSecond` arrive in all. Returns the function that stops it.
 */
export function sendAtRate(
  clients: ReadonlyArray<{ sendBatch(): void }>,
  batchesPerSecond: number,
): () => void {
  const intervalMs = (1000 * clients.length) / batchesPerSecond;
  const stops = clients.map((client, index) => {
    let timer: NodeJS.Timeout | undefined;
    const start = setTimeout(
      () => {
        client.sendBatch();
        timer = setInterval(() => client.sendBatch(), intervalMs);
      },
      (index / clients.length) * intervalMs,
    );
    return () => {
      clearTimeout(start);
      clearInterval(timer);
    };
  });
  return () => {
    for (const stop of stops) stop();
  };
}
