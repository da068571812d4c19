import { type ClientOptions, TopGunClient } from './topGunClient.js';

/**
 * Creates a TopGun client. Without `url` it is local-only; with it, it syncs whenever it can.
 * @example
 * const client = createClient({ url: 'ws://localhost:8080/sync' });
 * client.getMap<Todo>('todos').set('t1', { title: 'Milk', done: false });
 */
export function createClient(options: ClientOptions = {}): TopGunClient {
  return new TopGunClient(options);
}
