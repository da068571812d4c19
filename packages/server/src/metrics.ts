import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The server's Prometheus metrics, in a registry of its own (several servers may share a process). */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({
    name: 'topgun_connections',
    help: 'Open WebSocket connections',
    registers: [this.registry],
  });
  readonly opsApplied = new Counter({
    name: 'topgun_ops_applied_total',
    help: 'Ops committed (superseded ones included)',
    registers: [this.registry],
  });
  readonly opsRejected = new Counter({
    name: 'topgun_ops_rejected_total',
    help: 'Ops rejected, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly ackLatency = new Histogram({
    name: 'topgun_ack_latency_seconds',
    help: 'From receiving an ops message to acknowledging it after COMMIT',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly syncSessions = new Counter({
    name: 'topgun_sync_sessions_total',
    help: 'Merkle walks started',
    registers: [this.registry],
  });
  readonly activeSyncSessions = new Gauge({
    name: 'topgun_sync_sessions_active',
    help: 'Merkle walks in progress',
    registers: [this.registry],
  });
  readonly liveQueries = new Gauge({
    name: 'topgun_live_queries',
    help: 'Live query subscriptions',
    registers: [this.registry],
  });
  readonly aggregates = new Gauge({
    name: 'topgun_aggregates',
    help: 'Live aggregate subscriptions',
    registers: [this.registry],
  });
  readonly changesSent = new Counter({
    name: 'topgun_changes_sent_total',
    help: 'Records pushed to other clients (fan-out)',
    registers: [this.registry],
  });
  readonly storageLatency = new Histogram({
    name: 'topgun_storage_latency_seconds',
    help: 'Storage operation latency',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });
  readonly violations = new Counter({
    name: 'topgun_violations_total',
    help: 'Protocol and limit violations, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly budgetExceeded = new Counter({
    name: 'topgun_budget_exceeded_total',
    help: 'Requests refused, delayed or connections closed by a budget, by budget',
    labelNames: ['budget'] as const,
    registers: [this.registry],
  });
  readonly liveQueryRows = new Gauge({
    name: 'topgun_live_query_rows',
    help: 'Rows in the windows of live queries (counted against the budget per connection)',
    registers: [this.registry],
  });
  readonly queryIndexRows = new Gauge({
    name: 'topgun_query_index_rows',
    help: 'Rows held by live-query indexes, each shared by the subscriptions to one query',
    registers: [this.registry],
  });
  readonly gridMaps = new Gauge({
    name: 'topgun_grid_maps',
    help: 'Maps held in memory by the grid (loading ones included)',
    registers: [this.registry],
  });
  readonly gridBytes = new Gauge({
    name: 'topgun_grid_bytes',
    help: 'Estimated bytes of memory the grid holds (records, keys, values, Merkle trees)',
    registers: [this.registry],
  });
  readonly gridEvictions = new Counter({
    name: 'topgun_grid_evictions_total',
    help: 'Maps evicted from the grid, by reason: its memory budget, or unused for idleMapMs',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly connectionCpu = new Counter({
    name: 'topgun_connection_cpu_seconds_total',
    help: 'Event-loop time spent on clients’ messages, charged to their budgets',
    registers: [this.registry],
  });
  readonly eventLoopDelay = new Gauge({
    name: 'topgun_event_loop_delay_max_seconds',
    help: 'Longest event-loop delay over the last heartbeat interval',
    registers: [this.registry],
  });
  readonly announcementsReceived = new Counter({
    name: 'topgun_announcements_received_total',
    help: 'Notifications of other processes’ commits received (one commit may take several)',
    registers: [this.registry],
  });
  readonly announcementLag = new Histogram({
    name: 'topgun_announcement_lag_seconds',
    help: 'From a commit (or this process’s marker) being sent to its announcement arriving here',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly announcementLosses = new Counter({
    name: 'topgun_announcement_losses_total',
    help: 'Times this process lost its announcement channel and dropped what it held',
    registers: [this.registry],
  });

  /** Times a storage operation. */
  async timeStorage<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const end = this.storageLatency.startTimer({ operation });
    try {
      return await work();
    } finally {
      end();
    }
  }
}
