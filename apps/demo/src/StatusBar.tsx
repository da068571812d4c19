import { useSyncStatus } from '@topgun/react';
import { useState } from 'react';
import { network } from './client.js';

const LABELS = {
  offline: 'Offline',
  connecting: 'Connecting…',
  syncing: 'Syncing…',
  online: 'Online',
} as const;

export function StatusBar() {
  const connection = useSyncStatus((status) => status.connection);
  const pending = useSyncStatus((status) => status.pendingOps);
  const progress = useSyncStatus((status) => status.initialSync);
  const storageError = useSyncStatus((status) => status.storageError?.message ?? null);
  const isLeader = useSyncStatus((status) => status.isLeader);
  const [simulatedOffline, setSimulatedOffline] = useState(network.simulatedOffline());
  const toggle = () => {
    network.setSimulatedOffline(!simulatedOffline);
    setSimulatedOffline(!simulatedOffline);
  };
  return (
    <section className="status" aria-label="Sync status">
      <span className={`pill pill-${connection}`} data-testid="connection" data-state={connection}>
        <span className="dot" aria-hidden="true" />
        {LABELS[connection]}
      </span>
      <span className="pending" data-testid="pending">
        {pending === 0
          ? 'All changes saved'
          : `${pending} change${pending === 1 ? '' : 's'} waiting to sync`}
      </span>
      {!isLeader && connection !== 'offline' ? <span className="hint">via another tab</span> : null}
      {progress !== null ? (
        <span className="progress" data-testid="progress">
          <progress max={progress.expected} value={progress.received} />
          {progress.received.toLocaleString()} / {progress.expected.toLocaleString()}
        </span>
      ) : null}
      {storageError !== null ? <span className="error">{storageError}</span> : null}
      <button type="button" className="secondary" data-testid="toggle-offline" onClick={toggle}>
        {simulatedOffline ? 'Go online' : 'Go offline'}
      </button>
    </section>
  );
}
