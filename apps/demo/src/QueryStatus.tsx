import type { UseQueryStatus } from '@topgun/react';

const LABELS: Record<UseQueryStatus, string> = {
  synced: 'Synced',
  local: 'On this device',
  disabled: 'Off',
  error: 'Error',
};

const TITLES: Record<UseQueryStatus, string> = {
  synced: 'Confirmed by the server, and kept up to date',
  local: 'From this device, not yet confirmed by the server',
  disabled: 'Not evaluated',
  error: 'No result: see the message',
};

/** A small pill telling where a live result stands: on this device, synced, or in error. */
export function QueryStatus({ status, testId }: { status: UseQueryStatus; testId: string }) {
  return (
    <span
      className={`query-status query-${status}`}
      data-testid={testId}
      data-state={status}
      title={TITLES[status]}
    >
      {LABELS[status]}
    </span>
  );
}
