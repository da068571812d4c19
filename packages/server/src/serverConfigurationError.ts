import { TopGunError } from '@topgun/core';

/**
 * Server options or environment variables that cannot work (a bad key, contradicting
 * limits, an invalid variable): the server does not start. Thrown by `createServer` and
 * `optionsFromEnvironment`, with code `CONFIGURATION`.
 */
export class ServerConfigurationError extends TopGunError {
  /**
   * The settings at fault, as the caller named them: option paths (`auth.publicKey`) for
   * `createServer`, variable names (`JWT_SECRET`) for the environment.
   */
  readonly settings: readonly string[];

  constructor(settings: readonly string[], problem: string) {
    super('CONFIGURATION', problem);
    this.settings = settings;
  }
}
