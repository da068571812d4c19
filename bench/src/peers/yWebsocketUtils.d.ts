/** y-websocket's server helpers (bin/utils.cjs), which ship without types. */
declare module 'y-websocket/bin/utils' {
  import type { IncomingMessage } from 'node:http';
  import type { WebSocket } from 'ws';

  export function setupWSConnection(
    socket: WebSocket,
    request: IncomingMessage,
    options?: { docName?: string; gc?: boolean },
  ): void;
}
