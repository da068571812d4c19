/**
 * What a bench page reports: the page calls `benchReport(name, value)` (a Playwright binding)
 * as things happen, and the bench waits for names. Pushed rather than polled, so that waiting
 * costs the page nothing, and what was reported before a timeout or a crash is still there.
 */
import type { Page } from '@playwright/test';

/** The reports of one page. */
export class PageReports {
  private readonly values = new Map<string, unknown>();
  private readonly wake = new Set<() => void>();
  private crashed = false;

  private constructor() {}

  /** Listens to `page`'s reports; call before the page navigates. */
  static async attach(page: Page): Promise<PageReports> {
    const reports = new PageReports();
    await page.exposeFunction('benchReport', (name: string, value: unknown) => {
      reports.values.set(name, value);
      reports.notify();
    });
    page.on('crash', () => {
      reports.crashed = true;
      reports.notify();
    });
    return reports;
  }

  /** The last value reported under `name`, if any. */
  get<T>(name: string): T | undefined {
    return this.values.get(name) as T | undefined;
  }

  /**
   * Resolves with the value of `name` once reported, or with undefined when `deadline`
   * (a `performance.now()` time) passes first or the page crashes.
   */
  async waitFor<T>(name: string, deadline: number): Promise<T | undefined> {
    while (!this.values.has(name)) {
      const remaining = deadline - performance.now();
      if (this.crashed || remaining <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.wake.delete(done);
          resolve();
        };
        const timer = setTimeout(done, remaining);
        this.wake.add(done);
      });
    }
    return this.values.get(name) as T;
  }

  /** Why a wait gave up: the page crashed, or `timeoutMs` passed. */
  failure(timeoutMs: number): string {
    return this.crashed ? 'the page crashed' : `timed out after ${Math.round(timeoutMs / 1000)} s`;
  }

  private notify(): void {
    for (const wake of [...this.wake]) wake();
  }
}
