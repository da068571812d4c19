import type { TopGunClient } from '@topgun/client';
import { TopGunError } from '@topgun/core';
import { useContext } from 'react';
import { TopGunContext } from './TopGunProvider.js';

/**
 * The client of the nearest `TopGunProvider`.
 * @throws {TopGunError} with code `NO_PROVIDER` outside a provider.
 */
export function useClient(): TopGunClient {
  const client = useContext(TopGunContext);
  if (client === null)
    throw new TopGunError(
      'NO_PROVIDER',
      'useClient: wrap the tree in <TopGunProvider client={client}>',
    );
  return client;
}
