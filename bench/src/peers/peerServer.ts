/**
 * A peer's sync server in its own process, for the peers benchmark:
 * `node --import tsx src/peers/peerServer.ts yjs|tinybase|automerge <port>`; prints `ready` once it
 * listens. None persists anything (as each runs by default): Yjs keeps every document in
 * memory (y-websocket's server, without YPERSISTENCE), TinyBase keeps each path's
 * MergeableStore content in memory between its clients (a persister over a Map), Automerge-repo
 * keeps the documents its clients sent in its Repo, so each serves a client what others wrote
 * before it connected, as TopGun's server does.
 */
import { createServer } from 'node:http';
import { Repo } from '@automerge/automerge-repo';
import { WebSocketServerAdapter } from '@automerge/automerge-repo-network-websocket';
import { createMergeableStore, type MergeableStore } from 'tinybase';
import { createCustomPersister, type PersistedContent, type Persists } from 'tinybase/persisters';
import { createWsServer } from 'tinybase/synchronizers/synchronizer-ws-server';
import { WebSocketServer } from 'ws';
import { setupWSConnection } from 'y-websocket/bin/utils';

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);

if (kind === 'yjs') {
  const server = createServer();
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (socket, request) => setupWSConnection(socket, request, { gc: true }));
  server.listen(port, '127.0.0.1', () => console.log('ready'));
} else if (kind === 'tinybase') {
  const MERGEABLE_ONLY = 2 as Persists.MergeableStoreOnly;
  // What is kept of a path is the way to get its content, called when a new server client
  // loads it: taking a copy of the whole store on every save would make each change cost the
  // size of the path (quadratic bursts, an initial sync that never ends).
  const saved = new Map<string, () => PersistedContent<Persists.MergeableStoreOnly>>();
  const memoryPersister = (path: string) => {
    const store: MergeableStore = createMergeableStore();
    return createCustomPersister(
      store,
      async () => saved.get(path)?.(),
      async (getContent) => {
        saved.set(path, getContent);
      },
      () => undefined,
      () => undefined,
      undefined,
      MERGEABLE_ONLY,
    );
  };
  const sockets = new WebSocketServer({ port, host: '127.0.0.1' });
  createWsServer(sockets, memoryPersister);
  sockets.on('listening', () => console.log('ready'));
} else if (kind === 'automerge') {
  // A sync server as Automerge-repo's own sync server runs one, without storage: it holds
  // the documents clients send it and serves them to clients that ask (it announces none).
  const sockets = new WebSocketServer({ port, host: '127.0.0.1' });
  new Repo({
    network: [new WebSocketServerAdapter(sockets as never)],
    sharePolicy: async () => false,
  });
  sockets.on('listening', () => console.log('ready'));
} else {
  throw new Error(`unknown peer server ${kind}`);
}
