import type { FastifyBaseLogger } from 'fastify';
import type { ChangeFanout } from './changeFanout.js';
import type { LiveQueryHub } from './liveQueryHub.js';
import type { MapGrid } from './mapGrid.js';
import { mergeStored } from './mergeStored.js';
import type { ServerMetrics } from './metrics.js';
import type {
  AnnouncedRecord,
  AnnouncementChannel,
  AnnouncementHandlers,
  Storage,
  StoredRecord,
} from './storage/storage.js';

interface FreshWaiter {
  readonly map: string;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** The answer to a read while the process is not following other processes' commits. */
export const NOT_FOLLOWING = 'this server is catching up with other server processes: retry';

/**
 * Keeps this process's grid in step with the other processes writing the same database:
 * merges their announced commits into the loaded maps (in commit order per map) and fans
 * them out to clients and live queries exactly like this process's own commits.
 *
 * Freshness: {@link fresh} resolves once every commit acknowledged before it was called has
 * been merged, by sending a marker through the channel and waiting for it to come back
 * (announcements arrive in commit order); at once for a map not in memory, whose load comes
 * after the call. Liveness: a marker goes out every heartbeat; when
 * one does not come back within `maxLagMs`, or the channel fails, the process can no longer
 * tell what it missed: it drops everything it holds (`onLost`), listens again, and serves
 * again only then (`onRestored`).
 */
export class AnnouncementFollower {
  private healthy = false;
  private closed = false;
  /** Per map, the merges queued or running, in arrival order. */
  private chains = new Map<string, Promise<void>>();
  /** Bumped on every loss: merges of an earlier generation stop. */
  private generation = 0;
  private nextMark = 1;
  private markInFlight: { id: number; sentAt: number; waiters: FreshWaiter[] } | undefined;
  private waiting: FreshWaiter[] = [];
  private reconnectDelayMs = RECONNECT_MIN_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly handlers: AnnouncementHandlers = {
    onRecords: (announcement) => {
      this.deps.metrics.announcementsReceived.inc();
      this.observeLag(announcement.sentAt);
      this.onRecords(announcement.records);
    },
    onMark: (mark, sentAt) => this.onMark(mark, sentAt),
    onLost: (error) => this.lose(error),
  };

  constructor(
    private readonly deps: {
      readonly channel: AnnouncementChannel;
      readonly storage: Storage;
      readonly grid: MapGrid;
      readonly fanout: ChangeFanout;
      readonly liveQueries: LiveQueryHub;
      readonly metrics: ServerMetrics;
      readonly logger: FastifyBaseLogger;
      readonly now: () => number;
      /** How often a marker goes out when none is in flight. */
      readonly heartbeatMs: number;
      /** How long a marker may take to come back before the channel counts as lost. */
      readonly maxLagMs: number;
      /** Everything held may be stale: drop it, and make clients walk again. */
      readonly onLost: () => void;
      /** Following again: what is loaded from now on stays current. */
      readonly onRestored: () => void;
    },
  ) {
    this.heartbeat = setInterval(() => this.beat(), deps.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Whether commits of other processes are followed now (reads may be served). */
  get isHealthy(): boolean {
    return this.healthy;
  }

  /** Starts listening; when that fails, retries in the background (not healthy meanwhile). */
  async start(): Promise<void> {
    await this.connect();
  }

  /**
   * Resolves once every commit acknowledged (by any process) before the call has been
   * merged into `map`, if it is loaded; rejects with {@link NOT_FOLLOWING} when the process
   * is not following, or loses the channel first.
   */
  fresh(map: string): Promise<void> {
    if (!this.healthy) return Promise.reject(new Error(NOT_FOLLOWING));
    // A map not in memory is loaded after this call: its load reads every commit acknowledged
    // before it, and no marker needs to make the round trip (a cold map's first read).
    if (!this.deps.grid.isLoaded(map)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ map, resolve, reject });
      this.sendMark();
    });
  }

  close(): void {
    this.closed = true;
    this.healthy = false;
    clearInterval(this.heartbeat);
    clearTimeout(this.reconnectTimer);
    this.failWaiters(new Error('the server is shutting down'));
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    try {
      await this.deps.channel.listen(this.handlers);
    } catch (error) {
      this.deps.logger.warn(
        { err: error, retryInMs: this.reconnectDelayMs },
        'cannot listen for other processes’ commits',
      );
      this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectDelayMs);
      this.reconnectTimer.unref();
      this.reconnectDelayMs = Math.min(RECONNECT_MAX_MS, this.reconnectDelayMs * 2);
      return;
    }
    if (this.closed) return;
    this.reconnectDelayMs = RECONNECT_MIN_MS;
    // Maps loaded while not listening could have missed commits: what is loaded from now on
    // is followed.
    this.deps.onRestored();
    this.healthy = true;
    if (this.generation > 0) this.deps.logger.info('following other processes’ commits again');
  }

  private lose(error: Error): void {
    if (!this.healthy || this.closed) return;
    this.healthy = false;
    this.generation++;
    this.chains = new Map();
    this.deps.metrics.announcementLosses.inc();
    this.deps.logger.warn(
      { err: error },
      'lost track of other processes’ commits: dropping loaded maps and reconnecting clients',
    );
    this.failWaiters(new Error(NOT_FOLLOWING));
    this.deps.onLost();
    void this.deps.channel.close().finally(() => void this.connect());
  }

  private failWaiters(error: Error): void {
    const waiters = [...this.waiting, ...(this.markInFlight?.waiters ?? [])];
    this.waiting = [];
    this.markInFlight = undefined;
    for (const waiter of waiters) waiter.reject(error);
  }

  private beat(): void {
    if (!this.healthy) return;
    const inFlight = this.markInFlight;
    if (inFlight === undefined) {
      this.sendMark();
    } else if (this.deps.now() - inFlight.sentAt > this.deps.maxLagMs) {
      this.lose(new Error(`a marker did not come back within ${this.deps.maxLagMs} ms`));
    }
  }

  /**
   * Sends a marker unless one is in flight: waiters that arrive meanwhile wait for the next
   * one, since commits acknowledged before they asked may have committed after it.
   */
  private sendMark(): void {
    if (this.markInFlight !== undefined || !this.healthy) return;
    const id = this.nextMark++;
    const sentAt = this.deps.now();
    this.markInFlight = { id, sentAt, waiters: this.waiting };
    this.waiting = [];
    this.deps.channel.mark(id, sentAt).catch((error: Error) => this.lose(error));
  }

  private onMark(id: number, sentAt: number): void {
    const inFlight = this.markInFlight;
    if (inFlight === undefined || inFlight.id !== id) return;
    this.observeLag(sentAt);
    this.markInFlight = undefined;
    for (const waiter of inFlight.waiters) {
      // Every announcement before the marker has been received: once the map's merges
      // queued so far are done, the map holds every commit before the marker.
      const pending = this.chains.get(waiter.map);
      if (pending === undefined) waiter.resolve();
      else void pending.then(waiter.resolve);
    }
    if (this.waiting.length > 0) this.sendMark();
  }

  private observeLag(sentAt: number): void {
    this.deps.metrics.announcementLag.observe(Math.max(0, this.deps.now() - sentAt) / 1000);
  }

  private onRecords(records: readonly AnnouncedRecord[]): void {
    const byMap = new Map<string, AnnouncedRecord[]>();
    for (const record of records) {
      // A map not in memory needs nothing: loading it reads what was committed.
      if (!this.deps.grid.isLoaded(record.map)) continue;
      const list = byMap.get(record.map);
      if (list === undefined) byMap.set(record.map, [record]);
      else list.push(record);
    }
    for (const [map, list] of byMap) this.enqueue(map, list);
  }

  private enqueue(map: string, records: readonly AnnouncedRecord[]): void {
    const generation = this.generation;
    const previous = this.chains.get(map) ?? Promise.resolve();
    const next = previous
      .then(() => this.merge(map, records, generation))
      .catch((error: Error) => {
        if (generation === this.generation) this.lose(error);
      });
    this.chains.set(map, next);
    void next.then(() => {
      if (this.chains.get(map) === next) this.chains.delete(map);
    });
  }

  private async merge(
    name: string,
    records: readonly AnnouncedRecord[],
    generation: number,
  ): Promise<void> {
    // Held while merging: evicted meanwhile, the merge would go into a copy no one uses.
    const release = this.deps.grid.hold(name);
    try {
      await this.mergeHeld(name, records, generation);
    } finally {
      release();
    }
  }

  private async mergeHeld(
    name: string,
    records: readonly AnnouncedRecord[],
    generation: number,
  ): Promise<void> {
    // Loading (or loaded): merged once it is in, since the load may predate the commit.
    const map = await this.deps.grid.ifLoaded(name);
    if (map === undefined || generation !== this.generation) return;
    const stored: StoredRecord[] = [];
    const readBack: string[] = [];
    for (const record of records) {
      if ('stored' in record) {
        stored.push(record.stored);
        continue;
      }
      // Too large to announce in full: read back. (Whatever the map holds, it may lack the
      // change: with field writes, a record changes without its latest write changing.)
      readBack.push(record.key);
    }
    if (readBack.length > 0) {
      const read = await this.deps.metrics.timeStorage('read_announced', () =>
        this.deps.storage.getRecords(name, readBack),
      );
      if (generation !== this.generation) return;
      stored.push(...read);
    }
    const changes = mergeStored(map, stored);
    if (changes.length === 0) return;
    this.deps.fanout.publish(name, changes, undefined);
    await this.deps.liveQueries.onChanges(name, changes);
  }
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
