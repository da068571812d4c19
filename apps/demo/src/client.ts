import { browserOnlineManager, createClient, type OnlineManager } from '@topgun/client';
import { EVENTS } from './model.js';

/**
 * Network availability = the browser's, unless the user pressed "Go offline": a switch on
 * top of the real events, so the demo can show offline behaviour without pulling a cable.
 */
function demoOnlineManager(): OnlineManager & {
  setSimulatedOffline(offline: boolean): void;
  simulatedOffline(): boolean;
} {
  const browser = browserOnlineManager();
  const listeners = new Set<(online: boolean) => void>();
  let simulatedOffline = false;
  const isOnline = () => !simulatedOffline && browser.isOnline();
  browser.subscribe(() => {
    for (const listener of listeners) listener(isOnline());
  });
  return {
    isOnline,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    setSimulatedOffline(offline) {
      simulatedOffline = offline;
      for (const listener of listeners) listener(isOnline());
    },
    simulatedOffline: () => simulatedOffline,
  };
}

export const network = demoOnlineManager();

/**
 * The app's client: IndexedDB replica, synced with the server that served the page. Todos are
 * replicated whole; the activity log only as far as the Activity view's queries reach, plus up
 * to 5,000 events kept from queries that ended.
 */
export const client = createClient({
  url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sync`,
  online: network,
  maps: { [EVENTS]: { replicate: 'queries', maxRecords: 5_000 } },
});
