import { expect, it } from 'vitest';
import { contents, startServer, testClient, waitFor } from './harness.js';

it('gives a server that lost its data back the records only the client still has', async () => {
  const first = await startServer();
  const port = Number(new URL(first.url).port);
  const { client } = testClient(first.url);
  const notes = client.getMap<{ n: number }>('notes');
  for (let n = 0; n < 1_200; n++) notes.set(`note-${n}`, { n });
  await client.flush();
  await first.server.close();

  // A new server on the same port with empty storage: the client's walk sends it everything.
  const second = await startServer({ port });
  await waitFor(
    () => client.status.getState().connection === 'online',
    15_000,
    'the client to reconnect',
  );
  const { client: observer } = testClient(second.url);
  observer.getMap('notes');
  await waitFor(
    () => observer.getMap('notes').size === 1_200,
    15_000,
    'the observer to see the restored records',
  );
  expect(contents(observer, 'notes')).toEqual(contents(client, 'notes'));
  await client.close();
  await observer.close();
  await second.server.close();
});
