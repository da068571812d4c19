/**
 * Tools for testing (`@topgun/client/testing`), not needed to run a client: the acceptance
 * suite every `ClientStorage` passes, for a third-party storage to run.
 */
export {
  type ClientStorageTestApi,
  runClientStorageTests,
} from './clientStorageAcceptance.js';
