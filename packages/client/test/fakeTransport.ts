import { decodeMessage, encodeMessage, type Message, PROTOCOL_VERSION } from '@topgun/core';
import {
  type ClientOptions,
  type Connection,
  type ConnectionEvents,
  manualOnlineManager,
  type Transport,
} from '../src/index.js';

/** The `welcome` a test server answers a `hello` with: anonymous, the default limits. */
export function welcomeMessage(): Message {
  return {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    nodeId: 'server',
    userId: null,
    serverTime: Date.now(),
    heartbeatMs: 30_000,
    maxBatchOps: 1000,
    maxFrameBytes: 1024 * 1024,
  };
}

/** One connection of a {@link FakeTransport}: the test plays the server's side of it. */
export class FakeConnection implements Connection {
  readonly sent: Message[] = [];
  closed = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly url: string,
    private readonly events: ConnectionEvents,
  ) {}

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.sent.push(decodeMessage(frame));
    for (const wake of this.waiters.splice(0)) wake();
  }

  close(): void {
    this.closed = true;
  }

  /** Opens the connection and welcomes the client (after its hello). */
  async welcome(): Promise<void> {
    this.events.open();
    await this.next('hello');
    this.receive(welcomeMessage());
  }

  /** Delivers a message from the server. */
  receive(message: Message): void {
    if (!this.closed) this.events.frame(encodeMessage(message));
  }

  /** The server ends the connection. */
  drop(code = 1006, reason = 'gone'): void {
    this.closed = true;
    this.events.close(code, reason);
  }

  /** Resolves with the first message of `type` the client sent and the test has not taken. */
  async next<T extends Message['type']>(type: T): Promise<Extract<Message, { type: T }>> {
    for (;;) {
      const index = this.sent.findIndex((message) => message.type === type);
      if (index >= 0) return this.sent.splice(index, 1)[0] as Extract<Message, { type: T }>;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Answers the client's next walk of `map` as if both sides were equal. */
  async endWalk(): Promise<void> {
    const walk = await this.next('sync');
    this.receive({ type: 'sync_done', map: walk.map, session: walk.session, root: walk.root });
  }
}

/** A transport whose connections the test drives: no server, no socket. */
export class FakeTransport implements Transport {
  readonly connections: FakeConnection[] = [];
  private waiters: Array<() => void> = [];

  connect(url: string, events: ConnectionEvents): Connection {
    const connection = new FakeConnection(url, events);
    this.connections.push(connection);
    for (const wake of this.waiters.splice(0)) wake();
    return connection;
  }

  /** Resolves with connection number `index` (0 for the first) once the client opened it. */
  async connection(index: number): Promise<FakeConnection> {
    while (this.connections[index] === undefined)
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.connections[index]!;
  }
}

/** Options of a client whose server is the test through `transport`: memory, online, fast retries. */
export function overFakeTransport(transport: FakeTransport): ClientOptions {
  return {
    url: 'fake://server/sync',
    transport,
    storage: 'memory',
    online: manualOnlineManager(true),
    minRetryMs: 1,
    maxRetryMs: 5,
    random: () => 0,
  };
}
