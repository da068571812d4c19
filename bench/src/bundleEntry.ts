// What an app bundles from TopGun: the client and the React bindings (core comes with them).
export * from '@topgun/client';
export * from '@topgun/react';
