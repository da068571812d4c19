import { decodeMessage, type Message, type MessageOf } from '@topgun/core';
import type { Identity } from '../src/auth.js';
import type { Peer } from '../src/peer.js';

let nextId = 1;

/** A connection without a socket: it keeps what it is sent, decoded, for tests of services. */
export class FakePeer implements Peer {
  readonly id = nextId++;
  readonly nodeId: string;
  readonly user: Identity;
  readonly received: Message[] = [];
  open = true;

  constructor(userId: string | null = null) {
    this.nodeId = `peer-${this.id}`;
    this.user = { id: userId, claims: {}, expiresAt: undefined };
  }

  isOpen(): boolean {
    return this.open;
  }

  send(message: Message): void {
    if (this.open) this.received.push(message);
  }

  sendEncoded(frame: Uint8Array): void {
    if (this.open) this.received.push(decodeMessage(frame));
  }

  async drained(): Promise<void> {}

  /** Messages of one type received so far. */
  messages<T extends Message['type']>(type: T): Array<MessageOf<T>> {
    return this.received.filter((message) => message.type === type) as Array<MessageOf<T>>;
  }

  /** The keys of `map` received in `changes` messages, in order. */
  changedKeys(map: string): string[] {
    return this.messages('changes').flatMap((message) =>
      message.changes
        .filter((change) => change.map === map)
        .flatMap((change) => change.entries.map(([key]) => key)),
    );
  }
}
