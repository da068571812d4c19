import { TopGunError } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { CpuBudget, WorkAbandonedError, WorkLimitError } from '../src/cpuBudget.js';

/** Spends event-loop time: the budget measures the time work really takes. */
function spendSomeTime(): void {
  const start = performance.now();
  while (performance.now() === start) {}
}

describe('work stopped by the CPU budget', () => {
  it('is a TopGun error with code WORK_LIMIT past the per-message limit', async () => {
    // A limit of 0 ms: any work at all goes over it.
    const budget = new CpuBudget(1_000, 1_000, 1, 0);
    const slicer = budget.slicer();
    spendSomeTime();
    const error = await slicer.pause().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WorkLimitError);
    expect(error).toBeInstanceOf(TopGunError);
    expect(error).toMatchObject({ name: 'WorkLimitError', code: 'WORK_LIMIT', limitMs: 0 });
  });

  it('is a TopGun error with code WORK_ABANDONED once nobody wants the work', async () => {
    const budget = new CpuBudget(1_000, 1_000, 1, 1_000);
    const slicer = budget.slicer(() => false);
    const error = await slicer.pause().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WorkAbandonedError);
    expect(error).toMatchObject({ name: 'WorkAbandonedError', code: 'WORK_ABANDONED' });
  });

  it('is due once the message has spent its limit, however short its slices between I/O', async () => {
    // Slices of 1 s, a message limit of 5 ms: each piece of work between waits is short.
    const budget = new CpuBudget(1_000, 1_000, 1_000, 5);
    const slicer = budget.slicer();
    let checks = 0;
    while (!slicer.due()) {
      const start = performance.now();
      while (performance.now() - start < 1) {}
      await slicer.io(Promise.resolve());
      checks += 1;
      if (checks > 1_000) break;
    }
    // About five pieces of 1 ms each (fewer on a busy machine), never the thousand.
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks).toBeLessThanOrEqual(5);
    await expect(slicer.pause()).rejects.toBeInstanceOf(WorkLimitError);
  });
});
