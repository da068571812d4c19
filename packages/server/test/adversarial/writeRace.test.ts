import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../postgres.js';
import { TestClient } from '../testClient.js';
import { TOKEN_SECRET, tokenFor, usePostgresServer, writtenByOwner } from './adversarialKit.js';

const available = await postgresAvailable();

const TRIALS = 60;
/** How far ahead the attacker stamps its writes: within the server's 60-s drift bound. */
const AHEAD_MS = 30_000;

/** How the server answered one op. */
type Answer = 'acked' | 'superseded' | `rejected:${string}`;

function answerOf(result: Awaited<ReturnType<TestClient['write']>>): Answer {
  const [id] = result.ids;
  if (result.ack?.ids.includes(id!))
    return result.ack.superseded.includes(id!) ? 'superseded' : 'acked';
  return `rejected:${result.reject?.rejections.find((rejection) => rejection.id === id)?.reason}`;
}

describe.runIf(available)('write rules hold under racing writes', () => {
  const target = usePostgresServer({
    auth: { secret: TOKEN_SECRET },
    // A note may be created by anyone, and changed or deleted only by its owner.
    permissions: [{ map: 'notes/*', read: true, write: writtenByOwner }],
  });

  it('never replaces a create the victim was plainly acknowledged for', async () => {
    const victim = await TestClient.connect(target.url, await tokenFor('victim'));
    const attacker = await TestClient.connect(target.url, await tokenFor('attacker'));
    const outcomes: Array<{ key: string; victim: Answer; attacker: Answer }> = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const key = `note-${trial}`;
      // Both creates leave before either is answered: the attacker's lands while the
      // victim's is being decided, stamped later so that Last-Write-Wins alone favours it.
      const [victimResult, attackerResult] = await Promise.all([
        victim.write('notes/race', [[key, { owner: 'victim', text: 'mine' }]]),
        attacker.write('notes/race', [[key, { owner: 'attacker', text: 'taken' }]], () => ({
          millis: Date.now() + AHEAD_MS,
          counter: trial,
          nodeId: attacker.nodeId,
        })),
      ]);
      outcomes.push({
        key,
        victim: answerOf(victimResult),
        attacker: answerOf(attackerResult),
      });
    }

    const stored = await target.server.storage.getRecords(
      'notes/race',
      outcomes.map(({ key }) => key),
    );
    const ownerOf = new Map(
      stored.map(({ key, record }) => [key, (record.value as { owner?: string }).owner]),
    );
    const violations = outcomes.filter(
      ({ key, victim }) => victim === 'acked' && ownerOf.get(key) !== 'victim',
    );
    const tally: Record<string, number> = {};
    for (const { victim, attacker } of outcomes)
      tally[`${victim}/${attacker}`] = (tally[`${victim}/${attacker}`] ?? 0) + 1;
    expect(
      violations.length,
      `victim plainly acked yet replaced ${violations.length}/${TRIALS} times; victim/attacker answers: ${JSON.stringify(tally)}`,
    ).toBe(0);
    // Every key ends with exactly one of the two creates, and whoever lost was told so.
    for (const { key, victim: victimAnswer, attacker: attackerAnswer } of outcomes) {
      const owner = ownerOf.get(key);
      expect(owner === 'victim' || owner === 'attacker').toBe(true);
      if (owner === 'attacker') expect(victimAnswer).not.toBe('acked');
      else expect(attackerAnswer).not.toBe('acked');
    }
    victim.close();
    attacker.close();
  });
});
