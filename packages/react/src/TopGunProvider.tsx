import type { TopGunClient } from '@topgun/client';
import { createContext, type ReactNode } from 'react';

/** The client the hooks below a `TopGunProvider` use. */
export const TopGunContext = createContext<TopGunClient | null>(null);

/** Props of {@link TopGunProvider}. */
export interface TopGunProviderProps {
  /** The client, created once (outside components or in a `useState` initializer). */
  readonly client: TopGunClient;
  readonly children?: ReactNode;
}

/** Makes `client` available to the TopGun hooks of the tree below. */
export function TopGunProvider({ client, children }: TopGunProviderProps) {
  return <TopGunContext.Provider value={client}>{children}</TopGunContext.Provider>;
}
