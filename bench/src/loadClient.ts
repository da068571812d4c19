/**
 * The protocol side the server load benchmarks share: a WebSocket client that says hello,
 * walks its (empty) map so that it receives the others' changes to it, and sends batches of
 * ops; what it records of the answers is up to each benchmark.
 */
import {
  EMPTY_WRITE_TIMESTAMP,
  encodeMessage,
  HLC,
  LWWMap,
  type Message,
  PROTOCOL_VERSION,
  SyncSession,
  toSyncWire,
  toWireEntry,
  type Value,
  withFieldWrites,
} from '@topgun/core';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';

export abstract class LoadClientBase {
  readonly socket: WebSocket;
  readonly hlc: HLC;
  /** Ops acknowledged since the counters were reset. */
  acked = 0;
  /** Ops rejected since the counters were reset. */
  rejected = 0;
  /** Per batch, the latency of its first op's ack (ms), and when the batch was sent. */
  ackLatencies: number[] = [];
  ackSentTimes: number[] = [];
  /** The share of ops (0 to 1) sent as updates of one field (`done`) instead of whole writes. */
  updateShare = 0;
  private readonly sentAt = new Map<number, number>();
  private nextId = 1;
  private waiting = new Map<string, (message: Message) => void>();

  constructor(
    url: string,
    readonly index: number,
    /** The map this client writes and follows. */
    readonly map: string,
    /** Ops per batch. */
    readonly batch: number,
  ) {
    this.hlc = new HLC({ nodeId: `load-${index}` });
    this.socket = new WebSocket(url);
    this.socket.binaryType = 'nodebuffer';
    // The server's frames are trusted here: plain MessagePack decoding without the schema
    // check keeps the load generator's share of the two cores small.
    this.socket.on('message', (data) => {
      const message = unpack(data as Buffer) as Message;
      if (message.type === 'ack') this.countAcks(message.ids);
      else if (message.type === 'reject') this.rejected += message.rejections.length;
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
    const answered = Promise.race([this.wait('sync'), this.wait('sync_done')]);
    this.send(toSyncWire(this.map, 1, new SyncSession(new LWWMap(this.hlc)).open()));
    // An empty map ends the walk at once; one with records answers with its side of the walk
    // (and sends them), to which this client has nothing to add.
    if ((await answered).type === 'sync_done') return;
    const done = this.wait('sync_done');
    this.send({ type: 'sync_done', map: this.map, session: 1, root: new Uint8Array(8) });
    await done;
  }

  /** Sends one batch of ops on random keys of the map, with values from `valueOf`. */
  sendBatch(): void {
    const now = performance.now();
    const ops = Array.from({ length: this.batch }, () => {
      const id = this.nextId++;
      this.sentAt.set(id, now);
      const n = Math.floor(Math.random() * 10_000);
      const timestamp = this.hlc.now();
      const record =
        this.updateShare > 0 && Math.random() < this.updateShare
          ? withFieldWrites<Value>(
              { value: null, timestamp: EMPTY_WRITE_TIMESTAMP },
              { done: { timestamp, value: (n + Math.floor(now)) % 2 === 0 } },
            )
          : { value: this.valueOf(n, now), timestamp };
      return { id, map: this.map, entry: toWireEntry(`todo-${n}`, record) };
    });
    this.send({ type: 'ops', ops });
  }

  /** Forgets what was counted (after the warm-up). */
  resetCounters(): void {
    this.acked = 0;
    this.rejected = 0;
    this.ackLatencies = [];
    this.ackSentTimes = [];
  }

  /** The value written to key `n` by a batch sent at `now`. */
  protected abstract valueOf(n: number, now: number): Value;

  /** Every message from the server, as it arrives (acks and rejections already counted). */
  protected abstract receive(message: Message): void;

  protected send(message: Message): void {
    this.socket.send(encodeMessage(message));
  }

  private countAcks(ids: readonly number[]): void {
    const now = performance.now();
    for (const id of ids) {
      const sent = this.sentAt.get(id);
      if (sent === undefined) continue;
      this.sentAt.delete(id);
      this.acked++;
      // One latency per batch: the ack of its first op.
      if ((id - 1) % this.batch === 0) {
        this.ackLatencies.push(now - sent);
        this.ackSentTimes.push(sent);
      }
    }
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
