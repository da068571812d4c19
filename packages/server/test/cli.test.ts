import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { optionsFromEnvironment } from '../src/config.js';
import { defaultHost } from '../src/createServer.js';
import { TestClient } from './testClient.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');

describe('configuration from the environment', () => {
  it('logs lines a person reads on a terminal, JSON otherwise, unless LOG_FORMAT says', () => {
    const pretty = { target: 'pino-pretty' };
    expect(optionsFromEnvironment({}, { terminal: true }).logger).toMatchObject({
      transport: pretty,
    });
    expect(optionsFromEnvironment({}).logger).toEqual({ level: 'info' });
    expect(optionsFromEnvironment({ LOG_FORMAT: 'json' }, { terminal: true }).logger).toEqual({
      level: 'info',
    });
    expect(optionsFromEnvironment({ LOG_FORMAT: 'pretty' }).logger).toMatchObject({
      transport: pretty,
    });
    expect(() => optionsFromEnvironment({ LOG_FORMAT: 'xml' })).toThrow(/LOG_FORMAT/);
  });

  it('defaults to PGlite in ./.topgun-data on port 8080, JWT required', () => {
    const options = optionsFromEnvironment({});
    expect(options).toMatchObject({
      port: 8080,
      storage: { kind: 'pglite', dataDir: './.topgun-data' },
      auth: { allowAnonymous: false },
    });
  });

  it('reads PostgreSQL, JWT, anonymous access, limits, the grid budget and the static directory', () => {
    const options = optionsFromEnvironment({
      PORT: '9000',
      DATABASE_URL: 'postgres://u@db:5432/app',
      JWT_SECRET: 'a-secret-of-sixteen+',
      JWT_ALGORITHMS: 'HS256, HS384',
      JWT_ISSUER: 'me',
      TOPGUN_ALLOW_ANONYMOUS: 'true',
      TOPGUN_LIMITS: '{"maxBatchOps": 50}',
      TOPGUN_STATIC_DIR: 'dist',
      TOPGUN_GRID_MAX_MB: '64',
      TOPGUN_FANOUT_WINDOW_MS: '0',
      LOG_LEVEL: 'warn',
    });
    expect(options).toMatchObject({
      port: 9000,
      storage: { kind: 'postgres', connectionString: 'postgres://u@db:5432/app' },
      auth: {
        allowAnonymous: true,
        secret: 'a-secret-of-sixteen+',
        algorithms: ['HS256', 'HS384'],
        issuer: 'me',
      },
      limits: { maxBatchOps: 50 },
      staticDir: 'dist',
      gridMaxBytes: 64 * 1024 * 1024,
      fanoutWindowMs: 0,
      logger: { level: 'warn' },
    });
    expect(optionsFromEnvironment({ TOPGUN_GRID_MAX_MB: '0.5' }).gridMaxBytes).toBe(512 * 1024);
    expect(optionsFromEnvironment({}).gridMaxBytes).toBeUndefined();
  });

  it('listens on this machine only when anonymous clients are admitted, unless HOST says otherwise', () => {
    const anonymous = optionsFromEnvironment({ TOPGUN_ALLOW_ANONYMOUS: '1' });
    expect(anonymous.host).toBeUndefined();
    expect(defaultHost(anonymous)).toBe('127.0.0.1');
    expect(defaultHost(optionsFromEnvironment({ JWT_SECRET: 'a-secret-of-sixteen+' }))).toBe(
      '0.0.0.0',
    );
    expect(optionsFromEnvironment({ TOPGUN_ALLOW_ANONYMOUS: '1', HOST: '0.0.0.0' }).host).toBe(
      '0.0.0.0',
    );
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET/],
    [{ DATABASE_URL: 'not a url' }, /DATABASE_URL/],
    [{ TOPGUN_LIMITS: '{"maxBatchOps": -1}' }, /TOPGUN_LIMITS/],
    [{ TOPGUN_LIMITS: '{"nope": 1}' }, /TOPGUN_LIMITS/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ TOPGUN_GRID_MAX_MB: '0' }, /TOPGUN_GRID_MAX_MB/],
    [{ TOPGUN_GRID_MAX_MB: 'lots' }, /TOPGUN_GRID_MAX_MB/],
    [{ TOPGUN_FANOUT_WINDOW_MS: '-1' }, /TOPGUN_FANOUT_WINDOW_MS/],
  ])('rejects %j with a message naming the variable', (environment, message) => {
    expect(() => optionsFromEnvironment(environment)).toThrow(message);
  });
});

describe('the topgun-server command', () => {
  it('logs where it listens and its storage, serves, and exits 0 on SIGTERM after closing clients with 1001', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'topgun-cli-'));
    const child = spawn(process.execPath, [cli], {
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        TOPGUN_DATA_DIR: dataDir,
        TOPGUN_ALLOW_ANONYMOUS: '1',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += String(chunk);
    });
    // A failed assertion must not leave the server running (it would outlive the suite).
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line in: ${output}`)), 30_000);
      child.stdout.on('data', () => {
        const match = /TopGun server listening on (http:\/\/[^ ]+) .*storage: PGlite at/.exec(
          output,
        );
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    });
    const client = await TestClient.connect(url);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await client.closed()).toBe(1001);
    expect(await exited).toBe(0);
  });
});
