import type { Value } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { Permissions, type ReadContext, type ReadFilter } from '../src/permissions.js';

const alice = { id: 'alice', claims: {} };
const anonymous = { id: null, claims: {} };

/** Records of `notes` are read by their owner; the map itself by anyone signed in. */
const ownNotes = ({ user, value }: ReadContext) =>
  user.id !== null && (value === undefined || (value as { owner?: string }).owner === user.id);

const permissions = new Permissions([
  { map: 'public', read: true },
  { map: 'members', read: 'authenticated' },
  { map: 'notes', read: ownNotes },
  {
    map: 'broken',
    read: () => {
      throw new Error('a rule with a bug');
    },
  },
  { map: 'sealed', read: false, write: true },
]);

const note = (owner: string): { value: Value } => ({ value: { owner } });
const tombstone = (owner: string | undefined) => ({
  value: null,
  ...(owner === undefined ? {} : { prior: { owner } }),
});

function filterOf(user: typeof alice | typeof anonymous, map: string): ReadFilter {
  const filter = permissions.readFilter(user, map);
  if (filter === null) throw new Error(`${map} is not readable`);
  return filter;
}

describe('what a user may read of a map (readFilter)', () => {
  it('is nothing (null) for a map the rules refuse, or no rule names', () => {
    expect(permissions.readFilter(alice, 'sealed')).toBeNull();
    expect(permissions.readFilter(alice, 'unknown')).toBeNull();
    expect(permissions.readFilter(anonymous, 'members')).toBeNull();
    expect(permissions.readFilter(anonymous, 'notes')).toBeNull();
  });

  it('is nothing when the rule throws: failing closed', () => {
    expect(permissions.readFilter(alice, 'broken')).toBeNull();
  });

  it('is everything, without looking at records, for a rule that is not a function', () => {
    for (const map of ['public', 'members']) {
      const filter = filterOf(alice, map);
      expect(filter.everything).toBe(true);
      expect(filter.sees('k', tombstone(undefined))).toBe(true);
      expect(filter.seesChange('k', tombstone(undefined), note('bob'))).toBe('record');
    }
  });

  it('judges each record by its value under a function rule', () => {
    const filter = filterOf(alice, 'notes');
    expect(filter.everything).toBe(false);
    expect(filter.sees('mine', note('alice'))).toBe(true);
    expect(filter.sees('theirs', note('bob'))).toBe(false);
  });

  it('shows a tombstone to whoever could read the value it deleted, and one without to nobody', () => {
    const filter = filterOf(alice, 'notes');
    expect(filter.sees('mine', tombstone('alice'))).toBe(true);
    expect(filter.sees('theirs', tombstone('bob'))).toBe(false);
    expect(filter.sees('unknown', tombstone(undefined))).toBe(false);
  });

  it('tells of a change: the record, a revoke when it no longer sees the key, or nothing', () => {
    const filter = filterOf(alice, 'notes');
    expect(filter.seesChange('k', note('alice'), note('bob'))).toBe('record');
    expect(filter.seesChange('k', note('bob'), note('alice'))).toBe('revoke');
    expect(filter.seesChange('k', note('bob'), undefined)).toBe('nothing');
    expect(filter.seesChange('k', note('bob'), note('carol'))).toBe('nothing');
  });

  it('says which maps need record-level care, whoever asks', () => {
    expect(permissions.hasRecordLevelReads('notes')).toBe(true);
    expect(permissions.hasRecordLevelReads('public')).toBe(false);
  });
});
