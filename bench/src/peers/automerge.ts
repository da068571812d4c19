/**
 * Automerge-repo in the peers benchmark: one Automerge document per map, `{ rows }`, each
 * client a Repo of its own with the WebSocket client adapter, against a server Repo without
 * storage (src/peers/peerServer.ts). A map's document is created by its first client; later
 * clients find it by the URL the system keeps for the map's name.
 */
import { next as A } from '@automerge/automerge';
import {
  type AutomergeUrl,
  type DocHandle,
  type DocHandleChangePayload,
  Repo,
} from '@automerge/automerge-repo';
import { WebSocketClientAdapter } from '@automerge/automerge-repo-network-websocket';
import {
  byteLength,
  type PeerClient,
  PeerServerSystem,
  type Row,
  Traffic,
  until,
} from './systems.js';

interface RowsDoc {
  rows: Record<string, Row>;
}

/**
 * The WebSocket client adapter, counting message bytes and keeping, per document, the last
 * sync message the server sent: its heads say what the server holds.
 */
class CountingAdapter extends WebSocketClientAdapter {
  readonly fromServer = new Map<string, Uint8Array>();

  constructor(
    url: string,
    private readonly traffic: Traffic,
  ) {
    super(url);
    this.on('message', (message) => {
      if (message.type === 'sync' && 'documentId' in message && message.data !== undefined)
        this.fromServer.set(message.documentId, message.data);
    });
  }

  override connect(...args: Parameters<WebSocketClientAdapter['connect']>): void {
    super.connect(...args);
    const socket = this.socket!;
    const send = socket.send.bind(socket);
    socket.send = (data: Parameters<typeof send>[0]) => {
      this.traffic.sent += byteLength(data);
      send(data);
    };
  }

  override receiveMessage(messageBytes: Uint8Array): void {
    this.traffic.received += messageBytes.byteLength;
    super.receiveMessage(messageBytes);
  }
}

export class AutomergeSystem extends PeerServerSystem {
  /** Each map's document. */
  readonly #urls = new Map<string, AutomergeUrl>();

  constructor() {
    super('Automerge-repo', 'automerge');
  }

  override async start(): Promise<void> {
    this.#urls.clear();
    await super.start();
  }

  async client(map: string): Promise<PeerClient> {
    const traffic = new Traffic();
    const adapter = new CountingAdapter(this.url, traffic);
    const repo = new Repo({ network: [adapter] });
    await new Promise((resolve) => repo.networkSubsystem.once('peer', resolve));
    const url = this.#urls.get(map);
    let handle: DocHandle<RowsDoc>;
    if (url === undefined) {
      handle = repo.create<RowsDoc>({ rows: {} });
      this.#urls.set(map, handle.url);
    } else {
      handle = await find(repo, url);
    }
    const client = new AutomergeClient(repo, adapter, handle, traffic);
    await client.settled();
    return client;
  }
}

/** Finds a document, asking again while the server answers that it does not hold it yet. */
async function find(repo: Repo, url: AutomergeUrl): Promise<DocHandle<RowsDoc>> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    try {
      return await repo.find<RowsDoc>(url);
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

class AutomergeClient implements PeerClient {
  /** The heads of the server's last sync message, and the message they were read from. */
  #serverHeads: { message: Uint8Array; heads: string } | undefined;

  constructor(
    private readonly repo: Repo,
    private readonly adapter: CountingAdapter,
    private readonly handle: DocHandle<RowsDoc>,
    readonly traffic: Traffic,
  ) {}

  write(key: string, row: Row): void {
    this.handle.change((doc) => {
      doc.rows[key] = { n: row.n, text: row.text };
    });
  }

  writeMany(rows: ReadonlyArray<readonly [string, Row]>): void {
    this.handle.change((doc) => {
      for (const [key, row] of rows) doc.rows[key] = { n: row.n, text: row.text };
    });
  }

  get(key: string): Row | undefined {
    return this.handle.doc().rows[key];
  }

  get size(): number {
    return Object.keys(this.handle.doc().rows).length;
  }

  onChange(listener: (keys: Iterable<string>) => void): void {
    this.handle.on('change', ({ patches }: DocHandleChangePayload<RowsDoc>) => {
      const keys = new Set<string>();
      for (const { path } of patches) if (path[0] === 'rows') keys.add(String(path[1]));
      listener(keys);
    });
  }

  /** Whether the server's last sync message has this client's heads: it holds what it has. */
  #inSync(): boolean {
    const message = this.adapter.fromServer.get(this.handle.documentId);
    if (message === undefined) return false;
    if (this.#serverHeads?.message !== message)
      this.#serverHeads = {
        message,
        heads: [...A.decodeSyncMessage(message).heads].sort().join(),
      };
    return this.#serverHeads.heads === [...A.getHeads(this.handle.doc())].sort().join();
  }

  async settled(): Promise<void> {
    await until('Automerge server heads', () => this.#inSync());
  }

  async goOffline(): Promise<void> {
    this.repo.networkSubsystem.disconnect();
    this.adapter.fromServer.clear();
  }

  async goOnline(): Promise<void> {
    const peer = new Promise((resolve) => this.repo.networkSubsystem.once('peer', resolve));
    this.repo.networkSubsystem.reconnect();
    await peer;
    await this.settled();
  }

  async close(): Promise<void> {
    await this.repo.shutdown();
  }
}
