import { act, render, screen } from '@testing-library/react';
import { createClient, manualOnlineManager, type RejectedWrite } from '@topgun/client';
import { createServer } from '@topgun/server';
import { expect, it } from 'vitest';
import WebSocket from 'ws';
import { TopGunProvider, useMap, useOnRejected, useSyncStatus } from '../src/index.js';

it('shows a refused write rolled back, reports it, and tracks the connection', async () => {
  const server = await createServer({
    port: 0,
    host: '127.0.0.1',
    logger: false,
    auth: { allowAnonymous: true },
    permissions: [{ map: 'locked', read: true, write: false }],
  });
  const url = `${(await server.listen()).replace('http', 'ws')}/sync`;
  const client = createClient({
    url,
    storage: 'memory',
    WebSocket: WebSocket as never,
    online: manualOnlineManager(true),
    minRetryMs: 10,
  });
  const rejected: RejectedWrite[] = [];
  function Locked() {
    const { entries, set } = useMap<{ title: string }>('locked');
    const connection = useSyncStatus((status) => status.connection);
    useOnRejected((event) => rejected.push(event));
    return (
      <>
        <p>{connection}</p>
        <p>{entries.length === 0 ? 'empty' : entries.map(([, value]) => value.title).join()}</p>
        <button type="button" onClick={() => set('x', { title: 'optimistic' })}>
          write
        </button>
      </>
    );
  }
  render(
    <TopGunProvider client={client}>
      <Locked />
    </TopGunProvider>,
  );
  expect(await screen.findByText('online', {}, { timeout: 5_000 })).toBeTruthy();
  await act(async () => screen.getByRole('button').click());
  expect(screen.getByText('optimistic')).toBeTruthy();
  await act(async () => {
    await client.flush();
  });
  expect(await screen.findByText('empty')).toBeTruthy();
  expect(rejected).toEqual([expect.objectContaining({ key: 'x', reason: 'PERMISSION' })]);
  await client.close();
  await server.close();
});
