import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

/**
 * The rooms of `src`, top to bottom (README, "Layout"): a room imports only from rooms
 * below it, never from one beside or above it.
 */
const ROOMS: Record<string, number> = {
  '.': 8, // the facade: topGunClient.ts, createClient.ts, index.ts
  testing: 7,
  options: 6,
  tabs: 5,
  sync: 5,
  queries: 4,
  outbox: 4,
  replica: 3,
  status: 2,
  storage: 1,
  clientErrors: 0,
};

const src = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/** The room of a file: its folder, or `clientErrors` for the shared errors. */
function roomOf(file: string): string {
  const path = relative(src, file);
  if (/^clientErrors\.(js|ts)$/.test(path)) return 'clientErrors';
  return path.includes('/') ? (path.split('/')[0] ?? '.') : '.';
}

it('imports run one way, from the facade down to storage, and no file grows past ~300 lines', () => {
  const wrong: string[] = [];
  const long: string[] = [];
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    if (text.split('\n').length > 340) long.push(relative(src, file));
    const from = roomOf(file);
    for (const [, target] of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      const to = roomOf(join(dirname(file), target ?? ''));
      if (to === from) continue;
      const [fromRank, toRank] = [ROOMS[from], ROOMS[to]];
      if (fromRank === undefined || toRank === undefined || toRank >= fromRank)
        wrong.push(`${relative(src, file)} → ${target}`);
    }
  }
  expect(wrong).toEqual([]);
  expect(long).toEqual([]);
});
