import { type ClientMap, createClient, type SyncStatus } from '@topgun/client';
import type { QueryRow } from '@topgun/core';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type TopGunProviderProps,
  useMap,
  useQuery,
  useRecord,
  useSyncStatus,
} from '../src/index.js';

interface Todo {
  title: string;
  done: boolean;
  assignee?: { name: string };
}

describe('hook types', () => {
  it('types useQuery rows and checks the query against the record type', () => {
    const result = () =>
      useQuery<Todo>('todos', {
        where: { done: false, 'assignee.name': { startsWith: 'A' } },
        sort: 'title',
      });
    expectTypeOf<ReturnType<typeof result>['data']>().toEqualTypeOf<readonly QueryRow<Todo>[]>();
    // @ts-expect-error: unknown field
    useQuery<Todo>('todos', { where: { nope: 1 } });
    // @ts-expect-error: wrong value type
    useQuery<Todo>('todos', { where: { done: 'no' } });
    // A falsy query disables the hook.
    useQuery<Todo>('todos', null);
    useQuery<Todo>('todos', false);
  });

  it('types useMap, useRecord and useSyncStatus', () => {
    const map = () => useMap<Todo>('todos');
    expectTypeOf<ReturnType<typeof map>['entries']>().toEqualTypeOf<
      ReadonlyArray<readonly [string, Todo]>
    >();
    expectTypeOf<ReturnType<typeof map>['map']>().toEqualTypeOf<ClientMap<Todo>>();
    expectTypeOf<ReturnType<typeof map>['set']>().parameter(1).toEqualTypeOf<Todo>();
    const record = () => useRecord<Todo>('todos', 'a');
    expectTypeOf<ReturnType<typeof record>>().toEqualTypeOf<Todo | undefined>();
    const pending = () => useSyncStatus((status) => status.pendingOps);
    expectTypeOf<ReturnType<typeof pending>>().toEqualTypeOf<number>();
    const whole = () => useSyncStatus();
    expectTypeOf<ReturnType<typeof whole>>().toEqualTypeOf<SyncStatus>();
  });

  it('takes a client of several servers as it takes any, and types the connected URL', () => {
    // A readonly list: the option does not ask for a mutable one.
    const servers = ['wss://a.example.com/sync', 'wss://b.example.com/sync'] as const;
    const client = () => createClient({ url: servers });
    expectTypeOf<ReturnType<typeof client>>().toEqualTypeOf<TopGunProviderProps['client']>();
    const url = () => useSyncStatus((status) => status.url);
    expectTypeOf<ReturnType<typeof url>>().toEqualTypeOf<string | null>();
  });
});
