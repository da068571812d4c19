export { ClockDriftError } from './clockDriftError.js';
export { compareValues } from './compareValues.js';
export { describeValue } from './describeValue.js';
export { TopGunError, type TopGunErrorCode, ValidationError } from './errors.js';
export { hashString, keyHash } from './hash.js';
export { DEFAULT_MAX_DRIFT_MS, HLC, type HLCOptions } from './hlc.js';
export { LWWMap, type MapChange, type MapChangeListener, type SetOptions } from './lwwMap.js';
export {
  compareRecords,
  isRecordAbsent,
  type LWWRecord,
  validateRecord,
  validateTtl,
} from './lwwRecord.js';
export {
  DIGEST_STAMP_BYTES,
  DIGEST_THRESHOLD,
  MARK_DIGEST,
  MARK_PROBE,
  MARK_SAME,
  MARK_SEND_ALL,
  recordsUnder,
  rootBytes,
  type SyncAnswer,
  type SyncMessage,
  type SyncReplica,
  SyncSession,
  type SyncSessionOptions,
} from './merkleSync.js';
export {
  childCountOf,
  type HashWidth,
  LEAF_PATH_LENGTH,
  LEAVES_PER_PARTITION,
  leafPathOf,
  MERKLE_DEPTH,
  MERKLE_FANOUT,
  type MerkleNode,
  MerkleTree,
  validateMerklePath,
} from './merkleTree.js';
export { PARTITION_COUNT, partitionOf } from './partition.js';
export { isValidKey, MAX_KEY_LENGTH, validateKey } from './recordKey.js';
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
