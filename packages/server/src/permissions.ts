import type { Value } from '@topgun/core';

/** Who is asking. */
export interface UserContext {
  /** The user id (the JWT subject), or null for an anonymous session. */
  readonly id: string | null;
  /** The verified JWT claims (empty for anonymous sessions). */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** What a read rule is asked about. */
export interface ReadContext {
  readonly user: UserContext;
  readonly map: string;
  /** The record key, for record-level decisions; absent when asked about the whole map. */
  readonly key?: string;
  /** The record's value, when asked about one record. */
  readonly value?: Value;
}

/** What a write rule is asked about. */
export interface WriteContext {
  readonly user: UserContext;
  readonly map: string;
  readonly key: string;
  /**
   * The value the record would have after the write, or null for a delete. For an update,
   * the stored value with the patch applied (null when the record is deleted or absent: an
   * update does not bring it back).
   */
  readonly value: Value | null;
  /** The stored value before the write, if any. */
  readonly previous: Value | undefined;
  /**
   * For an update (`update(key, patch)`): the fields it writes, a removed field as
   * `undefined`. Absent for `set` and `delete`.
   */
  readonly patch?: Readonly<Record<string, Value | undefined>>;
}

/**
 * A rule: `true` / `false`, `'authenticated'` (any non-anonymous user), or a function of
 * the context. A read function is called once per map (without `key`) to admit the map, and
 * once per record (with `key` and `value`) to filter what is sent.
 */
export type Rule<Context> = boolean | 'authenticated' | ((context: Context) => boolean);

/** The rules of the maps whose names match `map`. */
export interface PermissionRule {
  /** A map name, or a pattern where `*` matches any run of characters (e.g. `notes/*`). */
  readonly map: string;
  /** Who may read. Default: false. */
  readonly read?: Rule<ReadContext>;
  /** Who may write. Default: false. */
  readonly write?: Rule<WriteContext>;
}

/** A record as read filters judge it: a tombstone carries the value it deleted, if kept. */
export interface FilteredRecord {
  readonly value: Value | null;
  readonly prior?: Value;
}

/**
 * What one user may read of one map ({@link Permissions.readFilter}). A record is seen when
 * the read rule admits its value; a tombstone when the rule admits the value it deleted
 * (`prior`; a tombstone without one is seen by nobody), so that deleting a record never
 * reveals its key, time or writer to those who could not read it.
 */
export interface ReadFilter {
  /** Whether every record of the map is seen: then none needs to be looked at. */
  readonly everything: boolean;
  /** Whether the user may see this record of the map. */
  sees(key: string, record: FilteredRecord): boolean;
  /**
   * What the user learns of a change of one record from `previous`: the record if it may see
   * it, that it must forget the key if it could see the previous one and no longer can, and
   * otherwise nothing.
   */
  seesChange(
    key: string,
    record: FilteredRecord,
    previous: FilteredRecord | undefined,
  ): 'record' | 'revoke' | 'nothing';
}

/** The filter of a map whose read rule does not look at records: all of it is seen. */
const EVERYTHING: ReadFilter = {
  everything: true,
  sees: () => true,
  seesChange: () => 'record',
};

/** The filter of a map whose read rule looks at each record's value. */
function recordFilter(admits: (key: string, value: Value) => boolean): ReadFilter {
  const sees = (key: string, record: FilteredRecord): boolean => {
    const value = record.value ?? record.prior;
    return value !== undefined && admits(key, value);
  };
  return {
    everything: false,
    sees,
    seesChange(key, record, previous) {
      if (sees(key, record)) return 'record';
      return previous !== undefined && sees(key, previous) ? 'revoke' : 'nothing';
    },
  };
}

/** Everything readable and writable by every admitted user. */
export const ALLOW_ALL: readonly PermissionRule[] = [{ map: '*', read: true, write: true }];

/** Evaluates permission rules; the first rule whose pattern matches a map applies. */
export class Permissions {
  private readonly rules: ReadonlyArray<PermissionRule & { readonly pattern: RegExp }>;
  private lastMap: string | undefined;
  private lastRule: (PermissionRule & { readonly pattern: RegExp }) | undefined;
  private readonly cache = new Map<
    string,
    (PermissionRule & { readonly pattern: RegExp }) | null
  >();

  constructor(rules: readonly PermissionRule[] = ALLOW_ALL) {
    this.rules = rules.map((rule) => ({ ...rule, pattern: patternOf(rule.map) }));
  }

  /**
   * What the user may read of the map: `null` when nothing (the map's read rule refuses the
   * user), else a filter over its records. The one rule for what a client receives, called
   * by walks, changes, live queries and write answers alike.
   */
  readFilter(user: UserContext, map: string): ReadFilter | null {
    const read = this.ruleFor(map)?.read;
    if (!evaluate(read, user, { user, map })) return null;
    if (typeof read !== 'function') return EVERYTHING;
    return recordFilter((key, value) => evaluate(read, user, { user, map, key, value }));
  }

  /**
   * Whether reads of the map depend on the record, for some user: then tombstones must keep
   * the value they deleted (`prior`), since who may see a deletion depends on it.
   */
  hasRecordLevelReads(map: string): boolean {
    return typeof this.ruleFor(map)?.read === 'function';
  }

  /** Whether the user may make this write. */
  canWrite(context: WriteContext): boolean {
    return evaluate(this.ruleFor(context.map)?.write, context.user, context);
  }

  /**
   * Whether some write to the map could be allowed to the user: false when its write rule
   * is `false`, missing, or `'authenticated'` for an anonymous user, so that such writes are
   * refused without loading the map.
   */
  mayWriteMap(user: UserContext, map: string): boolean {
    const rule = this.ruleFor(map)?.write;
    if (rule === undefined || rule === false) return false;
    return rule !== 'authenticated' || user.id !== null;
  }

  /** Whether the map's write rule depends on the record (so its verdict must hold at commit). */
  hasRecordLevelWrites(map: string): boolean {
    return typeof this.ruleFor(map)?.write === 'function';
  }

  private ruleFor(map: string) {
    // Every op asks several times about its map, and a batch's ops mostly share one.
    if (map === this.lastMap) return this.lastRule;
    let rule = this.cache.get(map);
    if (rule === undefined) {
      rule = this.rules.find((candidate) => candidate.pattern.test(map)) ?? null;
      // Map names come from clients: the cache must not grow with every name they make up.
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(map, rule);
    }
    this.lastMap = map;
    this.lastRule = rule ?? undefined;
    return rule ?? undefined;
  }
}

function evaluate<Context>(
  rule: Rule<Context> | undefined,
  user: UserContext,
  context: Context,
): boolean {
  if (rule === undefined || rule === false) return false;
  if (rule === true) return true;
  if (rule === 'authenticated') return user.id !== null;
  try {
    return rule(context) === true;
  } catch {
    // A rule that throws denies: failing closed is the only safe default.
    return false;
  }
}

function patternOf(map: string): RegExp {
  const escaped = map.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}
