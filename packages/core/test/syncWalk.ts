import {
  type HashWidth,
  type LWWMap,
  type LWWRecord,
  rootBytes,
  type SyncAnswer,
  type SyncMessage,
  SyncSession,
} from '../src/index.js';

/** What a complete walk between two in-process replicas did. */
export interface WalkReport<V> {
  /** Every message sent, in order (the first by the initiator), bulk records included. */
  readonly messages: Array<SyncMessage<V>>;
  /** Keys whose records crossed, per direction. */
  readonly sentByInitiator: Set<string>;
  readonly sentByResponder: Set<string>;
  /** Whether the side that received the last message found the roots equal. */
  readonly converged: boolean;
  /** Whether either side left differing nodes for a later walk (message budget). */
  readonly truncated: boolean;
}

/**
 * Runs a Merkle walk between two replicas in memory, as the client and the server would over
 * a socket: each side merges the records it receives, then answers.
 */
export function walk<V>(
  initiator: LWWMap<V>,
  responder: LWWMap<V>,
  width: HashWidth = 4,
  maxMessageBytes?: number,
  maxMessageWork?: number,
): WalkReport<V> {
  const messages: Array<SyncMessage<V>> = [];
  const sent = [new Set<string>(), new Set<string>()] as const;
  const replicas = [initiator, responder] as const;
  const budget = {
    ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }),
    ...(maxMessageWork === undefined ? {} : { maxMessageWork }),
  };
  const sessions = [
    new SyncSession(initiator, { width, ...budget }),
    new SyncSession(responder, budget),
  ] as const;
  let message: SyncMessage<V> | undefined = sessions[0].open();
  let sender = 0;
  while (message !== undefined) {
    messages.push(message);
    for (const [key] of message.records) sent[sender]!.add(key);
    const receiver = 1 - sender;
    for (const [key, record] of message.records)
      replicas[receiver]!.merge(key, record as LWWRecord<V>);
    const answer: SyncAnswer<V> = sessions[receiver]!.receive(message);
    message = answer.message && {
      ...answer.message,
      records: [...answer.message.records, ...sessions[receiver]!.bulkRecords(answer.bulk)],
    };
    sender = receiver;
    if (messages.length > 50) throw new Error('walk did not terminate');
  }
  // `sender` is now the side that received the last message and had nothing to answer: the
  // walk converged if that message announced its root.
  const ownRoot = rootBytes(replicas[sender]!.merkleTree);
  return {
    messages,
    sentByInitiator: sent[0],
    sentByResponder: sent[1],
    converged: messages.at(-1)!.root.every((byte, index) => byte === ownRoot[index]),
    truncated: sessions[0].truncated || sessions[1].truncated,
  };
}

/**
 * Walks again, as a client does, while the walks make progress (records cross, or a side
 * left nodes for later) and the replicas have not converged; returns every walk's report.
 */
export function walkUntilConverged<V>(
  initiator: LWWMap<V>,
  responder: LWWMap<V>,
  maxMessageBytes: number,
  maxWalks = 50,
  maxMessageWork?: number,
): Array<WalkReport<V>> {
  const reports: Array<WalkReport<V>> = [];
  for (let walks = 0; walks < maxWalks; walks++) {
    const report = walk(initiator, responder, 8, maxMessageBytes, maxMessageWork);
    reports.push(report);
    if (report.converged) return reports;
  }
  throw new Error(`no convergence after ${maxWalks} walks`);
}
