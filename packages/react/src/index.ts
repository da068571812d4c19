export { TopGunContext, TopGunProvider, type TopGunProviderProps } from './TopGunProvider.js';
export {
  type UseAggregateResult,
  useAggregate,
  useSuspenseAggregate,
} from './useAggregate.js';
export { useClient } from './useClient.js';
export { type UseMapResult, useMap } from './useMap.js';
export { useOnRejected } from './useOnRejected.js';
export { type UseQueryResult, type UseQueryStatus, useQuery } from './useQuery.js';
export { useRecord } from './useRecord.js';
export { useSuspenseQuery } from './useSuspenseQuery.js';
export { useSyncStatus } from './useSyncStatus.js';
