import {
  decodeMessage,
  EMPTY_WRITE_TIMESTAMP,
  encodeMessage,
  type FieldWrite,
  fromSyncWire,
  fromWireEntry,
  HLC,
  LWWMap,
  type Message,
  type MessageOf,
  PROTOCOL_VERSION,
  resumeWire,
  rootBytes,
  SyncSession,
  type Timestamp,
  toSyncWire,
  toWireEntry,
  type Value,
  type WireEntry,
  withFieldWrites,
} from '@topgun/core';
import WebSocket from 'ws';

type Type = Message['type'];

/** A small client speaking the protocol, for integration tests. */
export class TestClient {
  readonly received: Message[] = [];
  readonly hlc: HLC;
  closeCode: number | undefined;
  private waiters: Array<{
    match: (message: Message) => boolean;
    resolve: (message: Message) => void;
    reject: (error: Error) => void;
  }> = [];
  private closeWaiters: Array<(code: number) => void> = [];
  private nextOpId = 1;
  private nextSession = 1;

  private constructor(
    readonly socket: WebSocket,
    readonly nodeId: string,
  ) {
    this.hlc = new HLC({ nodeId });
    socket.on('message', (data) => {
      const message = decodeMessage(new Uint8Array(data as Buffer));
      this.received.push(message);
      const waiter = this.waiters.find((candidate) => candidate.match(message));
      if (waiter !== undefined) {
        this.waiters = this.waiters.filter((candidate) => candidate !== waiter);
        waiter.resolve(message);
      }
    });
    socket.on('close', (code) => {
      this.closeCode = code;
      for (const waiter of this.closeWaiters) waiter(code);
      this.closeWaiters = [];
      // Nothing more can arrive: whoever waits for a message learns it now.
      const waiters = this.waiters;
      this.waiters = [];
      for (const waiter of waiters) waiter.reject(new Error(`the connection closed (${code})`));
    });
    socket.on('error', () => {});
  }

  /** Opens a socket without saying hello. */
  static async open(
    url: string,
    nodeId = `c${Math.random().toString(36).slice(2, 10)}`,
    options: WebSocket.ClientOptions = {},
  ) {
    const socket = new WebSocket(`${url.replace('http', 'ws')}/sync`, options);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_request, response) =>
        reject(new Error(`HTTP ${response.statusCode}`)),
      );
    });
    return new TestClient(socket, nodeId);
  }

  /** Opens a socket and completes the handshake. */
  static async connect(url: string, token?: string, nodeId?: string) {
    const client = await TestClient.open(url, nodeId);
    const welcome = await client.hello(token);
    if (welcome.type !== 'welcome') throw new Error(`handshake failed: ${JSON.stringify(welcome)}`);
    return client;
  }

  async hello(token?: string, protocol = PROTOCOL_VERSION): Promise<Message> {
    this.send({
      type: 'hello',
      protocol,
      nodeId: this.nodeId,
      ...(token === undefined ? {} : { token }),
    });
    return this.next((message) => ['welcome', 'auth_error', 'error'].includes(message.type));
  }

  send(message: Message): void {
    this.socket.send(encodeMessage(message));
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.socket.send(bytes);
  }

  /** The next message (already received or future) matching `match`. */
  next(match: Type | ((message: Message) => boolean), timeoutMs = 10_000): Promise<Message> {
    const predicate =
      typeof match === 'string' ? (message: Message) => message.type === match : match;
    const earlier = this.received.findIndex(predicate);
    if (earlier >= 0) return Promise.resolve(this.received.splice(earlier, 1)[0]!);
    if (this.closeCode !== undefined)
      return Promise.reject(new Error(`the connection closed (${this.closeCode})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter.resolve !== done);
        reject(
          new Error(
            `no ${typeof match === 'string' ? match : 'matching'} message within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const done = (message: Message) => {
        clearTimeout(timer);
        this.received.splice(this.received.indexOf(message), 1);
        resolve(message);
      };
      this.waiters.push({
        match: predicate,
        resolve: done,
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  /** Messages of one type received and not yet consumed. */
  pending<T extends Type>(type: T): Array<MessageOf<T>> {
    return this.received.filter((message) => message.type === type) as Array<MessageOf<T>>;
  }

  closed(timeoutMs = 10_000): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the server did not close the connection')),
        timeoutMs,
      );
      this.closeWaiters.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Writes records as one `ops` message and resolves with the answers. */
  async write(
    map: string,
    writes: Array<[key: string, value: Value | null]>,
    stamp: () => ReturnType<HLC['now']> = () => this.hlc.now(),
  ): Promise<{
    ack: MessageOf<'ack'> | undefined;
    reject: MessageOf<'reject'> | undefined;
    ids: number[];
  }> {
    const ops = writes.map(([key, value]) => ({
      id: this.nextOpId++,
      map,
      entry: toWireEntry(key, { value, timestamp: stamp() }),
    }));
    return this.sendOps(ops);
  }

  async sendOps(ops: MessageOf<'ops'>['ops']) {
    const ids = ops.map((op) => op.id);
    this.send({ type: 'ops', ops });
    const answered = new Set<number>();
    let ack: MessageOf<'ack'> | undefined;
    let reject: MessageOf<'reject'> | undefined;
    while (answered.size < ids.length) {
      const message = await this.next(
        (candidate) =>
          (candidate.type === 'ack' && candidate.ids.some((id) => ids.includes(id))) ||
          (candidate.type === 'reject' &&
            candidate.rejections.some((rejection) => ids.includes(rejection.id))),
      );
      if (message.type === 'ack') {
        ack = message;
        for (const id of message.ids) answered.add(id);
      } else if (message.type === 'reject') {
        reject = message;
        for (const rejection of message.rejections) answered.add(rejection.id);
      }
    }
    return { ack, reject, ids };
  }

  /**
   * Runs a full Merkle walk of `map` against the server with `replica` (merging what
   * arrives), and resolves with what the server's `sync_done` said and what crossed.
   */
  async sync(
    map: string,
    replica: LWWMap<Value>,
    options: { lastSync?: number; width?: 4 | 8; session?: number } = {},
  ) {
    const session = options.session ?? this.nextSession++;
    const walk = new SyncSession(replica, { width: options.width ?? 4 });
    let received = 0;
    let messages = 0;
    this.send(toSyncWire(map, session, walk.open(), options.lastSync));
    for (;;) {
      const message = await this.next(
        (candidate) =>
          'session' in candidate &&
          candidate.session === session &&
          'map' in candidate &&
          candidate.map === map,
      );
      messages++;
      if (message.type === 'sync_records') {
        for (const entry of message.records) replica.merge(...fromWireEntry<Value>(entry));
        received += message.records.length;
        continue;
      }
      if (message.type === 'sync_done') {
        return { done: message, received, messages, converged: hasRoot(replica, message.root) };
      }
      if (message.type === 'sync_reset' || message.type === 'sync_error')
        return { done: message, received, messages, converged: false };
      if (message.type !== 'sync') throw new Error(`unexpected ${message.type}`);
      const incoming = fromSyncWire<Value>(message);
      for (const [key, record] of incoming.records) replica.merge(key, record);
      received += incoming.records.length;
      const answer = walk.receive(incoming);
      if (answer.message !== undefined) {
        const bulk = [...walk.bulkRecords(answer.bulk)];
        this.send(
          toSyncWire(map, session, {
            ...answer.message,
            records: [...answer.message.records, ...bulk],
          }),
        );
      } else {
        this.send({ type: 'sync_done', map, session, root: rootOf(replica) });
      }
    }
  }

  /**
   * Resumes `map` from `cursor` (`lastSync` its last sync), merging what arrives into
   * `replica`: what the server's `sync_done` said, the keys received, and the messages.
   */
  async resume(map: string, replica: LWWMap<Value>, cursor: string, lastSync: number) {
    const session = this.nextSession++;
    const keys: string[] = [];
    let messages = 0;
    this.send(resumeWire(map, session, rootOf(replica), lastSync, cursor));
    for (;;) {
      const message = await this.next(
        (candidate) =>
          'session' in candidate && candidate.session === session && 'map' in candidate,
      );
      messages++;
      if (message.type === 'sync_records') {
        for (const entry of message.records) {
          replica.merge(...fromWireEntry<Value>(entry));
          keys.push(entry[0]);
        }
        continue;
      }
      if (message.type !== 'sync_done') throw new Error(`unexpected ${message.type}`);
      return { done: message, keys, messages, converged: hasRoot(replica, message.root) };
    }
  }

  close(): void {
    this.socket.close();
  }
}

function rootOf(replica: LWWMap<Value>): Uint8Array {
  return rootBytes(replica.merkleTree);
}

/** Whether `root`, a peer's root bytes, is `replica`'s root. */
export function hasRoot(replica: LWWMap<Value>, root: Uint8Array): boolean {
  const own = rootOf(replica);
  return own.length === root.length && own.every((byte, index) => byte === root[index]);
}

/** A replica for tests. */
export function replicaOf(nodeId = 'test-replica'): LWWMap<Value> {
  return new LWWMap<Value>(new HLC({ nodeId, maxDriftMs: Number.POSITIVE_INFINITY }));
}

/** The wire entry of an update (field writes alone) stamped `timestamp`. */
export function updateEntry(
  key: string,
  patch: Readonly<Record<string, Value | undefined>>,
  timestamp: Timestamp,
): WireEntry {
  const fields: Record<string, FieldWrite> = {};
  for (const [name, value] of Object.entries(patch))
    fields[name] = value === undefined ? { timestamp } : { timestamp, value };
  return toWireEntry(
    key,
    withFieldWrites({ value: null, timestamp: EMPTY_WRITE_TIMESTAMP }, fields),
  );
}
