import type { Socket } from 'node:net';

const gathering = new WeakSet<Socket>();

/**
 * Holds what is written to `socket` in this turn of the event loop until its end, then
 * writes it in one system call. A fan-out sends a client several frames at once (one per
 * live query or aggregate a change touched), and a write per frame cost most of its time.
 */
export function gatherWritesOfTurn(socket: Socket): void {
  if (gathering.has(socket) || socket.destroyed) return;
  gathering.add(socket);
  socket.cork();
  process.nextTick(() => {
    gathering.delete(socket);
    socket.uncork();
  });
}
