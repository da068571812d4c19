import { z } from 'zod';
import { DEFAULT_LIMITS, type ServerLimits, type ServerOptions } from './options.js';
import { ServerConfigurationError } from './serverConfigurationError.js';

const flag = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
  .transform((value) => value === '1' || value === 'true' || value === 'yes');

const limitsSchema = z.strictObject(
  Object.fromEntries(
    Object.keys(DEFAULT_LIMITS).map((name) => [name, z.number().positive().optional()]),
  ),
) as z.ZodType<Partial<Record<keyof ServerLimits, number>>>;

const environmentSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  HOST: z.string().min(1).optional(),
  DATABASE_URL: z.string().url().optional(),
  TOPGUN_LISTEN_DATABASE_URL: z.string().url().optional(),
  TOPGUN_DATA_DIR: z.string().default('./.topgun-data'),
  JWT_SECRET: z.string().min(16, 'JWT_SECRET must be at least 16 characters').optional(),
  JWT_PUBLIC_KEY: z.string().optional(),
  JWKS_URL: z.string().url().optional(),
  JWT_ALGORITHMS: z.string().optional(),
  JWT_ISSUER: z.string().optional(),
  JWT_AUDIENCE: z.string().optional(),
  TOPGUN_ALLOW_ANONYMOUS: flag.default(false),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['pretty', 'json']).optional(),
  TOPGUN_NODE_ID: z.string().optional(),
  TOPGUN_STATIC_DIR: z.string().optional(),
  TOPGUN_GRID_MAX_MB: z.coerce.number().positive().optional(),
  TOPGUN_FANOUT_WINDOW_MS: z.coerce.number().min(0).max(1000).optional(),
  TOPGUN_LIMITS: z
    .string()
    .optional()
    .transform((text, context) => {
      if (text === undefined) return undefined;
      try {
        return limitsSchema.parse(JSON.parse(text));
      } catch (error) {
        context.addIssue({
          code: 'custom',
          message: `expected a JSON object of limits: ${(error as Error).message}`,
        });
        return z.NEVER;
      }
    }),
});

/**
 * Server options from environment variables (see the package README): `PORT`, `HOST`,
 * `DATABASE_URL` (else embedded PGlite in `TOPGUN_DATA_DIR`, default `./.topgun-data`),
 * `TOPGUN_LISTEN_DATABASE_URL` (where to listen for other processes' commits, if not there),
 * `JWT_SECRET` | `JWT_PUBLIC_KEY` | `JWKS_URL` with `JWT_ALGORITHMS`, `JWT_ISSUER`,
 * `JWT_AUDIENCE`, `TOPGUN_ALLOW_ANONYMOUS`, `LOG_LEVEL`, `LOG_FORMAT` (`pretty` or `json`; default
 * pretty when `terminal`, i.e. standard output is one, JSON otherwise), `TOPGUN_NODE_ID`,
 * `TOPGUN_STATIC_DIR`
 * (a built app to serve at `/`), `TOPGUN_GRID_MAX_MB` (the grid's memory budget in MiB,
 * `gridMaxBytes`; default a quarter of the V8 heap limit), `TOPGUN_FANOUT_WINDOW_MS`
 * (`fanoutWindowMs`), and `TOPGUN_LIMITS`
 * (a JSON object overriding any of `DEFAULT_LIMITS`).
 * @throws {ServerConfigurationError} listing every invalid variable (its `settings` name them).
 */
export function optionsFromEnvironment(
  environment: NodeJS.ProcessEnv,
  { terminal = false }: { readonly terminal?: boolean } = {},
): ServerOptions {
  const parsed = environmentSchema.safeParse(environment);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join('.')}: ${issue.message}`,
    );
    const variables = new Set(parsed.error.issues.map((issue) => issue.path.join('.')));
    throw new ServerConfigurationError(
      [...variables],
      `invalid configuration:\n  ${problems.join('\n  ')}`,
    );
  }
  const env = parsed.data;
  const algorithms = env.JWT_ALGORITHMS?.split(',')
    .map((algorithm) => algorithm.trim())
    .filter(Boolean);
  return {
    port: env.PORT,
    ...(env.HOST === undefined ? {} : { host: env.HOST }),
    storage:
      env.DATABASE_URL === undefined
        ? { kind: 'pglite', dataDir: env.TOPGUN_DATA_DIR }
        : {
            kind: 'postgres',
            connectionString: env.DATABASE_URL,
            ...(env.TOPGUN_LISTEN_DATABASE_URL === undefined
              ? {}
              : { listenConnectionString: env.TOPGUN_LISTEN_DATABASE_URL }),
          },
    auth: {
      allowAnonymous: env.TOPGUN_ALLOW_ANONYMOUS,
      ...(env.JWT_SECRET === undefined ? {} : { secret: env.JWT_SECRET }),
      ...(env.JWT_PUBLIC_KEY === undefined
        ? {}
        : { publicKey: env.JWT_PUBLIC_KEY.replace(/\\n/g, '\n') }),
      ...(env.JWKS_URL === undefined ? {} : { jwksUrl: env.JWKS_URL }),
      ...(algorithms === undefined ? {} : { algorithms }),
      ...(env.JWT_ISSUER === undefined ? {} : { issuer: env.JWT_ISSUER }),
      ...(env.JWT_AUDIENCE === undefined ? {} : { audience: env.JWT_AUDIENCE }),
    },
    logger:
      (env.LOG_FORMAT ?? (terminal ? 'pretty' : 'json')) === 'pretty'
        ? {
            level: env.LOG_LEVEL,
            // Lines a person reads: time, level, message, then the fields.
            transport: {
              target: 'pino-pretty',
              options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
            },
          }
        : { level: env.LOG_LEVEL },
    ...(env.TOPGUN_NODE_ID === undefined ? {} : { nodeId: env.TOPGUN_NODE_ID }),
    ...(env.TOPGUN_LIMITS === undefined ? {} : { limits: env.TOPGUN_LIMITS }),
    ...(env.TOPGUN_STATIC_DIR === undefined ? {} : { staticDir: env.TOPGUN_STATIC_DIR }),
    ...(env.TOPGUN_GRID_MAX_MB === undefined
      ? {}
      : { gridMaxBytes: Math.round(env.TOPGUN_GRID_MAX_MB * 1024 * 1024) }),
    ...(env.TOPGUN_FANOUT_WINDOW_MS === undefined
      ? {}
      : { fanoutWindowMs: env.TOPGUN_FANOUT_WINDOW_MS }),
  };
}
