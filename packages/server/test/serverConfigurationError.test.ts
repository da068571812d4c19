import { generateKeyPairSync } from 'node:crypto';
import { TopGunError } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { optionsFromEnvironment } from '../src/config.js';
import { createServer, ServerConfigurationError } from '../src/index.js';

const ecPublicKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();

/** The error `run` throws or rejects with. */
async function errorOf(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error('nothing was thrown');
}

describe('configuration a server cannot start with', () => {
  it('is a TopGun error with code CONFIGURATION naming every invalid variable', async () => {
    const error = await errorOf(() =>
      optionsFromEnvironment({ PORT: 'eighty', JWT_SECRET: 'short', LOG_FORMAT: 'pretty' }),
    );
    expect(error).toBeInstanceOf(ServerConfigurationError);
    expect(error).toBeInstanceOf(TopGunError);
    expect(error).toMatchObject({
      name: 'ServerConfigurationError',
      code: 'CONFIGURATION',
      settings: ['PORT', 'JWT_SECRET'],
    });
    expect((error as Error).message).toMatch(
      /^invalid configuration:\n {2}PORT: .*\n {2}JWT_SECRET/,
    );
  });

  it('names the limits variable when its JSON is not a limits object', async () => {
    const error = await errorOf(() => optionsFromEnvironment({ TOPGUN_LIMITS: '{"nope": 1}' }));
    expect(error).toMatchObject({ code: 'CONFIGURATION', settings: ['TOPGUN_LIMITS'] });
  });

  // Each is refused before storage is opened: nothing is left to close.
  it.each([
    [
      'a write window reaching past the pruning horizon',
      { maxWriteAgeMs: 2_000, pruneHorizonMs: 1_000 },
      ['maxWriteAgeMs', 'pruneHorizonMs'],
    ],
    ['an empty grid budget', { gridMaxBytes: 0 }, ['gridMaxBytes']],
    [
      'a public key that is no PEM key',
      { auth: { publicKey: 'not a key' } },
      ['auth.publicKey', 'auth.algorithms'],
    ],
    [
      'an elliptic-curve key with RSA algorithms only',
      { auth: { publicKey: ecPublicKey, algorithms: ['RS256'] } },
      ['auth.publicKey', 'auth.algorithms'],
    ],
  ])('createServer rejects %s', async (_, options, settings) => {
    const error = await errorOf(() =>
      createServer({ ...options, logger: false, storage: { kind: 'pglite' } }),
    );
    expect(error).toBeInstanceOf(ServerConfigurationError);
    expect(error).toMatchObject({ code: 'CONFIGURATION', settings });
  });
});
