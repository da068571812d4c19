import type { Message } from '@topgun/core';
import type { Identity } from './auth.js';

/** What the server's services need from one client connection. */
export interface Peer {
  /** Connection number, unique within the server. */
  readonly id: number;
  /** The node id the client announced; its writes must carry it. */
  readonly nodeId: string;
  /** Who the client is. */
  readonly user: Identity;
  /** Whether messages can still be sent. */
  isOpen(): boolean;
  /** Sends a message; a client too slow to read is disconnected instead of buffered forever. */
  send(message: Message): void;
  /** Sends an already encoded message (shared by several clients), with the same rule. */
  sendEncoded(frame: Uint8Array): void;
  /** Waits until the client has read most of what was sent (for bulk transfers). */
  drained(): Promise<void>;
}
