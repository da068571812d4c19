export { canonicalSize, valueFingerprint } from './canonicalValue.js';
export { ClockDriftError } from './clockDriftError.js';
export { compareValues } from './compareValues.js';
export { describeValue } from './describeValue.js';
export { compareBytes } from './encodingOrder.js';
export { TopGunError, type TopGunErrorCode, ValidationError } from './errors.js';
export {
  applyFieldWrites,
  compareFieldWrites,
  EMPTY_WRITE_TIMESTAMP,
  type FieldWrite,
  type FieldWrites,
  isEmptyWrite,
  isObject,
  latestTimestamp,
  restampWrite,
  splitWrite,
  wholeWriteOf,
  withFieldWrites,
} from './fieldWrites.js';
export { hashString, keyHash } from './hash.js';
export { assertWithinDrift, DEFAULT_MAX_DRIFT_MS, HLC, type HLCOptions } from './hlc.js';
export {
  LWWMap,
  type MapChange,
  type MapChangeListener,
  type SetOptions,
} from './lwwMap.js';
export {
  compareRecords,
  isRecordAbsent,
  type LWWRecord,
  mergeRecords,
  validateRecord,
  validateTtl,
} from './lwwRecord.js';
export { isValidMapName, MAX_MAP_NAME_LENGTH, validateMapName } from './mapName.js';
export {
  type BulkItem,
  bulkSize,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_MESSAGE_WORK,
  DIGEST_STAMP_BYTES,
  DIGEST_THRESHOLD,
  LEAF_DIGEST_MAX,
  MARK_DIGEST,
  MARK_PROBE,
  MARK_SAME,
  MARK_SEND_ALL,
  rootBytes,
  type SyncAnswer,
  type SyncMessage,
  SyncSession,
  type SyncSessionOptions,
} from './merkleSync.js';
export {
  childCountOf,
  type HashWidth,
  itemHash,
  LEAF_PATH_LENGTH,
  LEAVES_PER_PARTITION,
  leafPathOf,
  MERKLE_DEPTH,
  MERKLE_FANOUT,
  type MerkleNode,
  MerkleTree,
  rootHashHex,
  validateMerklePath,
} from './merkleTree.js';
export { PARTITION_COUNT, partitionOf } from './partition.js';
export {
  CLOSE_CODES,
  CLOSE_FORBIDDEN,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_UNAUTHORIZED,
} from './protocol/closeCodes.js';
export { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './protocol/decodeLimits.js';
export { decodeMessage } from './protocol/decodeMessage.js';
export { decodeServerMessage } from './protocol/decodeServerMessage.js';
export { encodeMessage } from './protocol/encodeMessage.js';
export { decodeEntries, encodeEntries } from './protocol/entriesCodec.js';
export { fittedChunks } from './protocol/fittedChunks.js';
export { encodeHave, holdsItem, MAX_WINDOW_ROWS } from './protocol/haveDigest.js';
export { MAX_TOKEN_LENGTH } from './protocol/messageFields.js';
export {
  ackSchema,
  authErrorSchema,
  changesSchema,
  errorSchema,
  helloSchema,
  MESSAGE_TYPES,
  type Message,
  type MessageOf,
  messageSchema,
  opSchema,
  opsSchema,
  pingSchema,
  pongSchema,
  queryErrorSchema,
  queryMoreSchema,
  querySnapshotSchema,
  queryUpdateSchema,
  rejectionReasonSchema,
  rejectSchema,
  revokeSchema,
  subscribeSchema,
  syncDoneSchema,
  syncErrorSchema,
  syncRecordsSchema,
  syncResetSchema,
  syncSchema,
  unsubscribeSchema,
  type WireEntry,
  welcomeSchema,
  wireEntrySchema,
} from './protocol/messages.js';
export { ProtocolError, type ProtocolErrorReason } from './protocol/protocolError.js';
export { PROTOCOL_VERSION } from './protocol/protocolVersion.js';
export type { ServerMessage, ServerMessageType } from './protocol/serverMessageChecks.js';
export { fromSyncWire, resumeWire, toSyncWire } from './protocol/syncWire.js';
export { decodeValue, encodeValue } from './protocol/valueCodec.js';
export { fromWireEntry, toWireEntry } from './protocol/wireRecords.js';
export type {
  AggregateQuery,
  AggregateRow,
  AggregateSortKey,
  AggregateValue,
  Figure,
  GroupKey,
  TimeBucket,
} from './query/aggregateTypes.js';
export {
  compileAggregate,
  MAX_AGGREGATE_NAME,
  MAX_FIGURES,
  MAX_GROUP_KEYS,
  MAX_GROUPS,
  timeOf,
} from './query/compileAggregate.js';
export {
  type CompiledQuery,
  compileQuery,
  MAX_IN_VALUES,
  MAX_PROJECTED_FIELDS,
  MAX_QUERY_CONDITIONS,
  MAX_QUERY_DEPTH,
  MAX_QUERY_OPERANDS,
  MAX_SORT_KEYS,
} from './query/compileQuery.js';
export { evaluateAggregate } from './query/evaluateAggregate.js';
export { evaluateQuery } from './query/evaluateQuery.js';
export { ExactSum } from './query/exactSum.js';
export { MAX_PATH_SEGMENTS, readField } from './query/fieldPath.js';
export { type AggregateChange, type AggregateDelta, LiveAggregate } from './query/liveAggregate.js';
export {
  LiveQuery,
  type LiveQueryDelta,
  LiveResult,
  type RecordChange,
} from './query/liveQuery.js';
export { QueryError } from './query/queryError.js';
export {
  type IndexedQuery,
  type IndexMove,
  QueryIndex,
  type WindowChange,
  windowChange,
} from './query/queryIndex.js';
export type {
  Comparison,
  Condition,
  FieldPath,
  PathValue,
  Query,
  QueryRow,
  SortDirection,
  SortKey,
  Where,
} from './query/queryTypes.js';
export { type Slicer, sortInSlices } from './query/sortInSlices.js';
export { isValidKey, MAX_KEY_BYTES, validateKey } from './recordKey.js';
export { type RecordListener, ServerLWWMap, type ServerLWWMapOptions } from './serverLwwMap.js';
export { stableStringify } from './stableStringify.js';
export {
  compareTimestamps,
  formatTimestamp,
  isValidNodeId,
  MAX_COUNTER,
  MAX_MILLIS,
  MAX_NODE_ID_LENGTH,
  parseTimestamp,
  type Timestamp,
  validateTimestamp,
} from './timestamp.js';
export { MAX_VALUE_DEPTH, type Value, validateValue } from './value.js';
export {
  MAX_WALK_PATH_LENGTH,
  SUBLEAF_DEPTH,
  type SyncReplica,
  WalkTree,
} from './walkTree.js';
