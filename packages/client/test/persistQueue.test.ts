import { describe, expect, it } from 'vitest';
import type { ClientStorage, StorageBatch } from '../src/storage/clientStorage.js';
import { PersistQueue } from '../src/storage/persistQueue.js';

/** A storage whose commits wait until the test lets each one finish. */
function heldStorage() {
  const commits: Array<{ batch: StorageBatch; finish: () => void }> = [];
  const storage: ClientStorage = {
    load: async () => ({ records: [], outbox: [], meta: new Map() }),
    commit: (batch) => new Promise<void>((finish) => commits.push({ batch, finish })),
    close: async () => {},
  };
  return { storage, commits };
}

const tick = () => new Promise((resolve) => setTimeout(resolve));
const entry = (id: string) => ({
  id,
  map: 'todos',
  key: id,
  record: { value: id, timestamp: { millis: 1, counter: 0, nodeId: 'tab' } },
});

describe('the persist queue', () => {
  it('says committed once what was queued before the call is stored, not what came after', async () => {
    const { storage, commits } = heldStorage();
    const queue = new PersistQueue(storage, () => {});
    queue.addOutbox(entry('w1'));
    let done = false;
    const committed = queue.committed().then(() => {
      done = true;
    });
    await tick();
    expect(commits).toHaveLength(1);
    // An acknowledgement arrives while the write's commit runs.
    queue.removeOutbox('w1');
    commits[0]?.finish();
    await committed;
    expect(done).toBe(true);
    // The acknowledgement is stored by the next commit, which the caller did not wait for.
    await tick();
    expect(commits).toHaveLength(2);
    expect(commits[1]?.batch.outboxRemove).toEqual(['w1']);
    commits[1]?.finish();
    await queue.committed();
  });

  it('waits for a commit already running and then for the one holding what it queued', async () => {
    const { storage, commits } = heldStorage();
    const queue = new PersistQueue(storage, () => {});
    queue.addOutbox(entry('w1'));
    await tick();
    expect(commits).toHaveLength(1);
    queue.addOutbox(entry('w2')); // not in the running commit
    let done = false;
    const committed = queue.committed().then(() => {
      done = true;
    });
    commits[0]?.finish();
    await tick();
    expect(done).toBe(false);
    expect(commits[1]?.batch.outboxAdd?.map((added) => added.id)).toEqual(['w2']);
    commits[1]?.finish();
    await committed;
    expect(done).toBe(true);
  });
});
