/**
 * Tools for testing deployments of several server processes (`@topgun/server/testing`):
 * not needed to run a server.
 */
export { RoundRobinBalancer } from './roundRobinBalancer.js';
export { type ServerProcess, startServerProcess } from './serverProcess.js';
