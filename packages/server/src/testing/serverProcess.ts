import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A `topgun-server` running in a process of its own. */
export interface ServerProcess {
  /** Its base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly child: ChildProcess;
  /** Kills it (SIGKILL) unless it exited; resolves once it is gone. */
  kill(): Promise<void>;
}

/**
 * Runs the `topgun-server` command of this package in a process of its own, configured by
 * `environment` (as the command's README describes: `DATABASE_URL`, `JWT_SECRET`,
 * `TOPGUN_ALLOW_ANONYMOUS`, …) on a free port of 127.0.0.1. Resolves once it listens, or
 * rejects with its output if it exits or does not listen within 30 s. The caller kills it.
 */
export function startServerProcess(environment: Record<string, string>): Promise<ServerProcess> {
  // The built command, found from the package's root: this file is two levels below it both
  // as source (src/testing) and built (dist/testing).
  const cli = join(dirname(fileURLToPath(import.meta.url)), '../../dist/cli.js');
  const child = spawn(process.execPath, [cli], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...environment },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  // The latest output, for the error of a server that did not start; read to the end either
  // way, since a full pipe would block the server's logging.
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + String(chunk)).slice(-8_000);
  };
  child.stderr.on('data', collect);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void kill();
      reject(new Error(`the server did not listen within 30 s: ${output}`));
    }, 30_000);
    const onOutput = (chunk: Buffer) => {
      collect(chunk);
      const match = /TopGun server listening on (http:\/\/[^ ]+) /.exec(output);
      if (match?.[1] === undefined) return;
      clearTimeout(timer);
      child.stdout.off('data', onOutput);
      child.stdout.on('data', collect);
      child.off('exit', onExit);
      resolve({ url: match[1], child, kill });
    };
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before listening: ${output}`));
    };
    child.stdout.on('data', onOutput);
    child.once('exit', onExit);
  });
}
