import {
  CLOSE_FORBIDDEN,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_UNAUTHORIZED,
  DEFAULT_DECODE_LIMITS,
  decodeServerMessage,
  encodeMessage,
  type Message,
} from '@topgun/core';
import { SyncError } from '../clientErrors.js';
import type { SyncStatusStore } from '../status/syncStatus.js';
import type { OnlineManager } from './onlineManager.js';
import type { Connection, Transport } from './transport.js';

/** How the connection is made and kept. */
export interface ReconnectingConnectionOptions {
  /**
   * The servers' URLs. Each connection attempt takes the next one, so a failed or dropped
   * connection is followed by an attempt on the next server; the first is picked at random,
   * so that clients given the same list spread over its servers.
   */
  readonly urls: readonly [string, ...string[]];
  readonly token?: string | (() => string | undefined | Promise<string | undefined>) | undefined;
  readonly transport: Transport;
  readonly online: OnlineManager;
  readonly status: SyncStatusStore;
  /** Reconnect delay bounds (full jitter between 0 and the exponential bound). Default: 500 ms to 30 s. */
  readonly minRetryMs?: number | undefined;
  readonly maxRetryMs?: number | undefined;
  /** Index in `urls` of the server the first attempt goes to. Default: drawn with `random`. */
  readonly firstUrl?: number | undefined;
  /** The wall clock. */
  readonly now: () => number;
  /** Uniform random numbers in [0, 1): the first URL and the reconnect jitter. */
  readonly random: () => number;
}

/** What the protocol above the connection is told. */
export interface ConnectionHandler {
  /** A connection is open: the protocol says hello (with the token fetched for it). */
  opened(token: string | undefined): void;
  message(message: Message): void;
  /** A frame that does not decode (it may have belonged to a walk, which would then stall). */
  malformed(): void;
  /** The connection is gone: whatever was on its way is lost. */
  dropped(): void;
  /** Every half heartbeat while the session is up: the walks' watchdog. */
  tick(now: number): void;
}

/** The most bytes one frame from the server may take to decode. */
const CLIENT_DECODE_LIMITS = { ...DEFAULT_DECODE_LIMITS, maxFrameBytes: 16 * 1024 * 1024 };

/**
 * A connection to one of the servers that is made again whenever it is lost, with
 * exponential backoff and full jitter, each attempt to the next URL; online/offline events;
 * the heartbeat (a ping every half heartbeat, a reconnect after 2.5 silent ones). Frames in
 * and out are protocol messages; what they mean is the handler's business.
 */
export class ReconnectingConnection {
  #connection: Connection | undefined;
  #attempt = 0;
  /** Index in `urls` of the server the next connection attempt goes to. */
  #nextUrl: number;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #lastMessageAt = 0;
  /** Set when the server ended the session because the token expired: reconnect at once. */
  #tokenExpired = false;
  #stopped = false;
  readonly #unsubscribeOnline: () => void;
  readonly #options: ReconnectingConnectionOptions;
  readonly #handler: ConnectionHandler;

  constructor(options: ReconnectingConnectionOptions, handler: ConnectionHandler) {
    this.#options = options;
    this.#handler = handler;
    this.#nextUrl = options.firstUrl ?? firstUrl(options.urls, options.random);
    this.#unsubscribeOnline = options.online.subscribe((online) => {
      if (online) {
        this.#attempt = 0;
        this.#connectSoon(0);
      } else {
        this.#disconnect(new SyncError('CONNECTION_LOST', 'the network is offline'));
      }
    });
    // At once: a timer would wait behind whatever the page runs next (a framework's code).
    void this.#connect();
  }

  send(message: Message): void {
    this.sendFrame(encodeMessage(message));
  }

  sendFrame(frame: Uint8Array): void {
    this.#connection?.send(frame);
  }

  /** The server welcomed this client: the backoff starts over and the heartbeat runs. */
  established(heartbeatMs: number): void {
    this.#attempt = 0;
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = setInterval(
      () => this.#beat(heartbeatMs),
      Math.max(1_000, Math.floor(heartbeatMs / 2)),
    );
  }

  /**
   * The server refused the session (`auth_error`, which may come after its `welcome`): the
   * connection ends here, what the server said stays the last error, and the next attempt
   * backs off (it would be refused the same way).
   */
  refused(): void {
    if (this.#connection === undefined) return;
    this.#disconnect(undefined);
    this.#backOff();
    this.#scheduleReconnect();
  }

  /** The server said the token expired: when it closes, reconnect at once with a fresh one. */
  expireToken(): void {
    this.#tokenExpired = true;
  }

  /** Closes the connection for good. */
  stop(): void {
    this.#stopped = true;
    this.#unsubscribeOnline();
    clearTimeout(this.#retryTimer);
    this.#disconnect(undefined);
  }

  #connectSoon(delayMs: number): void {
    if (this.#stopped || this.#connection !== undefined) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#connect();
    }, delayMs);
  }

  async #connect(): Promise<void> {
    if (this.#stopped || this.#connection !== undefined) return;
    const { status, urls, token: tokenOption, online } = this.#options;
    if (!online.isOnline()) {
      status.setState({ connection: 'offline' });
      return;
    }
    status.setState({ connection: 'connecting' });
    let token: string | undefined;
    try {
      token = typeof tokenOption === 'function' ? await tokenOption() : tokenOption;
    } catch (error) {
      this.#fail('AUTH_FAILED', `the token provider failed: ${(error as Error).message}`);
      return;
    }
    if (this.#stopped || this.#connection !== undefined) return;
    const url = urls[this.#nextUrl] ?? urls[0];
    this.#nextUrl = (this.#nextUrl + 1) % urls.length;
    // Events of a connection since dropped are ignored.
    let connection: Connection | undefined;
    const current = () => connection !== undefined && this.#connection === connection;
    try {
      connection = this.#options.transport.connect(url, {
        open: () => {
          if (!current()) return;
          this.#lastMessageAt = this.#options.now();
          this.#handler.opened(token);
        },
        frame: (data) => {
          if (current()) this.#onFrame(data);
        },
        close: (code, reason) => {
          if (current()) this.#onClose(code, reason);
        },
      });
    } catch (error) {
      this.#fail('CONNECTION_LOST', `cannot connect to ${url}: ${(error as Error).message}`);
      return;
    }
    this.#connection = connection;
    status.setState({ url });
  }

  #fail(code: 'AUTH_FAILED' | 'CONNECTION_LOST', message: string): void {
    this.#options.status.setState({ lastError: new SyncError(code, message) });
    this.#scheduleReconnect();
  }

  #onFrame(data: Uint8Array): void {
    this.#lastMessageAt = this.#options.now();
    let message: Message;
    try {
      message = decodeServerMessage(data, CLIENT_DECODE_LIMITS);
    } catch (error) {
      this.#options.status.setState({
        lastError: new SyncError(
          'MALFORMED_MESSAGE',
          `the server sent a malformed message: ${(error as Error).message}`,
        ),
      });
      this.#handler.malformed();
      return;
    }
    this.#handler.message(message);
  }

  #onClose(code: number, reason: string): void {
    const tokenExpired = this.#tokenExpired;
    this.#drop(new SyncError('CONNECTION_LOST', reason || `connection closed (${code})`));
    if (tokenExpired) {
      // The session outlived its token: a fresh one (from the token provider) is due now.
      this.#attempt = 0;
    } else if (
      code === CLOSE_UNAUTHORIZED ||
      code === CLOSE_PROTOCOL_ERROR ||
      code === CLOSE_FORBIDDEN
    ) {
      this.#backOff();
    }
    this.#scheduleReconnect();
  }

  #beat(heartbeatMs: number): void {
    const now = this.#options.now();
    this.#handler.tick(now);
    if (now - this.#lastMessageAt > heartbeatMs * 2.5) {
      // Nothing heard for too long: the connection is dead even if the socket says otherwise.
      this.#disconnect(new SyncError('CONNECTION_LOST', 'no heartbeat from the server'));
      this.#scheduleReconnect();
      return;
    }
    this.send({ type: 'ping', time: now });
  }

  #disconnect(error: SyncError | undefined): void {
    const closing = this.#connection;
    this.#connection = undefined;
    closing?.close();
    this.#drop(error);
  }

  #drop(error: SyncError | undefined): void {
    this.#connection = undefined;
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    this.#tokenExpired = false;
    this.#handler.dropped();
    this.#options.status.setState({
      connection: 'offline',
      url: null,
      initialSync: null,
      ...(error === undefined ? {} : { lastError: error }),
    });
  }

  /** The server refused this client: retrying at once would fail the same way. */
  #backOff(): void {
    this.#attempt = Math.max(this.#attempt, 4);
  }

  #scheduleReconnect(): void {
    if (this.#stopped || !this.#options.online.isOnline()) return;
    const min = this.#options.minRetryMs ?? 500;
    const max = this.#options.maxRetryMs ?? 30_000;
    const bound = Math.min(max, min * 2 ** this.#attempt);
    this.#attempt++;
    this.#connectSoon(this.#options.random() * bound);
  }
}

/**
 * Index of the server a client's first attempt goes to: drawn at random, so that clients given
 * the same list spread over its servers. A single URL draws no number, so that a scripted
 * `random` feeds the jitter exactly as it would without a list.
 */
export function firstUrl(urls: readonly string[], random: () => number): number {
  return urls.length === 1 ? 0 : Math.min(urls.length - 1, Math.floor(random() * urls.length));
}
