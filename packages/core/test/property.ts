import fc from 'fast-check';

/**
 * Every property test runs from one seed: `FC_SEED` when set (to replay a failure that
 * fast-check reported with its seed and path), otherwise a fresh one that fast-check prints
 * in the failure report.
 */
const seed = process.env['FC_SEED'] === undefined ? undefined : Number(process.env['FC_SEED']);
fc.configureGlobal({
  ...(seed === undefined ? {} : { seed }),
  numRuns: Number(process.env['FC_RUNS'] ?? 100),
});

export { fc };
