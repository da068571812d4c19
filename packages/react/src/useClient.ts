import type { TopGunClient } from '@topgun/client';
import { useContext } from 'react';
import { TopGunContext } from './TopGunProvider.js';

/**
 * The client of the nearest `TopGunProvider`.
 * @throws {Error} outside a provider.
 */
export function useClient(): TopGunClient {
  const client = useContext(TopGunContext);
  if (client === null)
    throw new Error('useClient: wrap the tree in <TopGunProvider client={client}>');
  return client;
}
