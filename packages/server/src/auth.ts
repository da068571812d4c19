import type { MessageOf } from '@topgun/core';
import {
  createRemoteJWKSet,
  importSPKI,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { UserContext } from './permissions.js';
import { ServerConfigurationError } from './serverConfigurationError.js';

/** How clients prove who they are. */
export interface AuthOptions {
  /** Admit clients without a token, as anonymous users. Default: false. */
  readonly allowAnonymous?: boolean;
  /** Shared secret for HS256 tokens. */
  readonly secret?: string;
  /** PEM public key (SPKI) for RS256 or ES256 tokens. */
  readonly publicKey?: string;
  /** URL of a JWKS to verify tokens with. */
  readonly jwksUrl?: string;
  /** Accepted algorithms. Default: HS256 with a secret, RS256 and ES256 with keys. */
  readonly algorithms?: readonly string[];
  /** Required `iss`, when set. */
  readonly issuer?: string;
  /** Required `aud`, when set. */
  readonly audience?: string;
}

/** Why a token was refused, as sent in `auth_error`. */
export type AuthFailure = MessageOf<'auth_error'>['code'];

/** A verified session identity. */
export interface Identity extends UserContext {
  /** When the token expires (ms since epoch), if it does. */
  readonly expiresAt: number | undefined;
}

/** The result of authenticating a `hello`. */
export type AuthResult =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly code: AuthFailure; readonly message: string };

type VerificationKey = Awaited<ReturnType<typeof importSPKI>>;

/** Verifies handshake tokens with jose; algorithms are pinned, `exp` and `nbf` checked. */
export class Authenticator {
  private readonly key: Promise<Uint8Array | JWTVerifyGetKey | undefined>;
  private readonly algorithms: string[];

  constructor(private readonly options: AuthOptions = {}) {
    if (options.secret !== undefined) {
      this.key = Promise.resolve(new TextEncoder().encode(options.secret));
      this.algorithms = [...(options.algorithms ?? ['HS256'])];
    } else if (options.publicKey !== undefined) {
      const algorithms = [...(options.algorithms ?? ['RS256', 'ES256'])];
      this.algorithms = algorithms;
      const pem = options.publicKey;
      this.key = (async () => {
        // One key per pinned algorithm that the PEM key can serve.
        const keys: Array<{ alg: string; key: VerificationKey }> = [];
        for (const alg of algorithms) {
          try {
            keys.push({ alg, key: await importSPKI(pem, alg) });
          } catch {
            // not a key for this algorithm
          }
        }
        if (keys.length === 0)
          throw new ServerConfigurationError(
            ['auth.publicKey', 'auth.algorithms'],
            `the public key (JWT_PUBLIC_KEY) is not a PEM public key for the configured algorithms (${algorithms.join(', ')})`,
          );
        const getKey: JWTVerifyGetKey = (header) => {
          const match = keys.find((candidate) => candidate.alg === header.alg);
          // A token's problem, not the server's: `authenticate` answers it as `INVALID_TOKEN`.
          if (match === undefined) throw new Error(`algorithm ${header.alg} is not accepted`);
          return match.key;
        };
        return getKey;
      })();
    } else if (options.jwksUrl !== undefined) {
      this.algorithms = [...(options.algorithms ?? ['RS256', 'ES256'])];
      this.key = Promise.resolve(createRemoteJWKSet(new URL(options.jwksUrl)));
    } else {
      this.algorithms = [];
      this.key = Promise.resolve(undefined);
    }
    // Surface a bad key at start-up instead of at the first handshake.
    this.key.catch(() => {});
  }

  /**
   * Checks the configured key material; rejects with a {@link ServerConfigurationError} when
   * it is unusable.
   */
  async ready(): Promise<void> {
    await this.key;
  }

  /** Authenticates the token of a `hello` (or its absence). */
  async authenticate(token: string | undefined): Promise<AuthResult> {
    if (token === undefined) {
      if (this.options.allowAnonymous) {
        return { ok: true, identity: { id: null, claims: {}, expiresAt: undefined } };
      }
      return { ok: false, code: 'ANONYMOUS_NOT_ALLOWED', message: 'a token is required' };
    }
    const key = await this.key;
    if (key === undefined) {
      return { ok: false, code: 'INVALID_TOKEN', message: 'this server accepts no tokens' };
    }
    try {
      const { payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
        algorithms: this.algorithms,
        ...(this.options.issuer === undefined ? {} : { issuer: this.options.issuer }),
        ...(this.options.audience === undefined ? {} : { audience: this.options.audience }),
        requiredClaims: ['sub'],
      });
      if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 256) {
        return {
          ok: false,
          code: 'INVALID_TOKEN',
          message:
            'the token was refused: its subject (sub) must be a string of 1 to 256 characters',
        };
      }
      return { ok: true, identity: identityOf(payload, payload.sub) };
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'ERR_JWT_EXPIRED')
        return { ok: false, code: 'EXPIRED_TOKEN', message: 'the token has expired' };
      return {
        ok: false,
        code: 'INVALID_TOKEN',
        message: `the token was refused: ${(error as Error).message}`,
      };
    }
  }
}

function identityOf(payload: JWTPayload, subject: string): Identity {
  return {
    id: subject,
    claims: payload as Record<string, unknown>,
    expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
  };
}
