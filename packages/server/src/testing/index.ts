/**
 * Tools for testing deployments of several server processes (`@topgun/server/testing`):
 * not needed to run a server.
 */
export { RoundRobinBalancer } from './roundRobinBalancer.js';
