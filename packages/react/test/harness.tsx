/** What the hook tests share: clients closed after each test, the provider, loading. */
import { act, render, screen } from '@testing-library/react';
import { createClient, createMemoryStorage, type TopGunClient } from '@topgun/client';
import { type ReactNode, StrictMode, Suspense } from 'react';
import { afterEach, expect, vi } from 'vitest';
import { TopGunProvider } from '../src/index.js';

const clients: TopGunClient[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

/** A client on memory storage (by default), closed after the test. */
export function newClient(options: Parameters<typeof createClient>[0] = {}): TopGunClient {
  const client = createClient({ storage: 'memory', ...options });
  clients.push(client);
  return client;
}

/** The provider of `client`, in StrictMode with `strict`. */
export function wrapper(client: TopGunClient, strict = false) {
  return ({ children }: { children: ReactNode }) => {
    const tree = <TopGunProvider client={client}>{children}</TopGunProvider>;
    return strict ? <StrictMode>{tree}</StrictMode> : tree;
  };
}

/** Lets queued microtask notifications reach React. */
export const flush = () => act(async () => {});

/**
 * Renders `view` under a Suspense boundary, over a client whose stored replica holds
 * `todo` in map `todos` and is not loaded yet: the fallback shows first; resolves once the
 * replica is loaded.
 */
export async function renderWhileLoading(todo: object, view: ReactNode): Promise<void> {
  const storage = createMemoryStorage();
  const seed = newClient({ storage });
  seed.getMap('todos').set('s', todo);
  await seed.close();
  const client = newClient({ storage });
  render(<Suspense fallback={<p>loading</p>}>{view}</Suspense>, { wrapper: wrapper(client) });
  expect(screen.getByText('loading')).toBeTruthy();
  await act(async () => {
    await client.ready;
  });
}
