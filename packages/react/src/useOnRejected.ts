import type { RejectedWrite } from '@topgun/client';
import { useEffect, useRef } from 'react';
import { useClient } from './useClient.js';

/** Calls `onRejected` for every write of this tab the server refused (already rolled back). */
export function useOnRejected(onRejected: (rejected: RejectedWrite) => void): void {
  const client = useClient();
  const latest = useRef(onRejected);
  latest.current = onRejected;
  useEffect(() => client.onRejected((rejected) => latest.current(rejected)), [client]);
}
