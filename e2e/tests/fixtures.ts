import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test as base, expect, type Page } from '@playwright/test';
import { createServer, type TopGunServer } from '@topgun/server';

const demoDist = join(dirname(fileURLToPath(import.meta.url)), '../../apps/demo/dist');

/** A sync server of its own for one test: its own port and storage, serving the built demo. */
export class DemoServer {
  server: TopGunServer | undefined;
  url = '';
  private port = 0;
  readonly dataDir = mkdtempSync(join(tmpdir(), 'topgun-e2e-'));

  async start(): Promise<string> {
    this.server = await createServer({
      port: this.port,
      host: '127.0.0.1',
      storage: { kind: 'pglite', dataDir: this.dataDir },
      staticDir: demoDist,
      auth: { allowAnonymous: true },
      logger: { level: process.env['TOPGUN_TEST_LOG'] ?? 'silent' },
    });
    this.url = await this.server.listen();
    this.port = Number(new URL(this.url).port);
    return this.url;
  }

  /** Stops the server gracefully; `start` brings it back on the same port and data. */
  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export const test = base.extend<{ demo: DemoServer }>({
  // biome-ignore lint/correctness/noEmptyPattern: Playwright reads fixture dependencies from this pattern
  demo: async ({}, use) => {
    const demo = new DemoServer();
    await demo.start();
    await use(demo);
    await demo.dispose();
  },
});

export { expect };

/** Opens the demo as a named user and waits until it is connected. */
export async function openDemo(page: Page, url: string, user: string, hash = ''): Promise<void> {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  (page as Page & { consoleErrors?: string[] }).consoleErrors = errors;
  await page.addInitScript((name) => {
    if (localStorage.getItem('topgun-demo:user') === null)
      localStorage.setItem('topgun-demo:user', name);
  }, user);
  await page.goto(`${url}/${hash}`);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'online');
}

/** Console errors the page logged (must stay empty). */
export function consoleErrors(page: Page): string[] {
  return (page as Page & { consoleErrors?: string[] }).consoleErrors ?? [];
}

/** Adds a todo through the UI. */
export async function addTodo(page: Page, title: string): Promise<void> {
  await page.getByTestId('new-todo').fill(title);
  await page.getByTestId('new-todo').press('Enter');
  await expect(page.getByTestId('todo').filter({ hasText: title })).toBeVisible();
}

/** The titles of the listed todos, in order. */
export function titles(page: Page) {
  return page
    .getByTestId('todo')
    .evaluateAll((items) => items.map((item) => item.getAttribute('data-title')));
}
