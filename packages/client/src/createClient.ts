import type { ClientOptions } from './options/clientOptions.js';
import { TopGunClient } from './topGunClient.js';

/**
 * Creates a TopGun client. Without `url` it is local-only; with it, it syncs whenever it can.
 * `url` may list several processes of one server: the client fails over between them.
 * @throws {ConfigurationError} when `nodeId` is malformed or `url` is an empty list.
 * @example
 * const client = createClient({ url: 'ws://localhost:8080/sync' });
 * client.getMap<Todo>('todos').set('t1', { title: 'Milk', done: false });
 * @example
 * const client = createClient({ url: ['wss://a.example.com/sync', 'wss://b.example.com/sync'] });
 */
export function createClient(options: ClientOptions = {}): TopGunClient {
  return new TopGunClient(options);
}
