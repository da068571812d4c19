import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { ANNOUNCEMENT_CHANNEL, parseAnnouncement } from './announcementPayload.js';
import { loadPg } from './loadPg.js';
import type { AnnouncementChannel, AnnouncementHandlers } from './storage.js';

/**
 * Announcements over PostgreSQL `LISTEN`/`NOTIFY`, on a connection of their own (outside the
 * pool: a listening session must stay open and idle between notifications).
 */
export function createPgAnnouncementChannel(connectionString: string): AnnouncementChannel {
  const origin = randomBytes(8).toString('hex');
  const ownPrefix = `{"o":"${origin}","t":`;
  let client: pg.Client | undefined;

  const drop = (target: pg.Client) => {
    if (client === target) client = undefined;
    // Closed on purpose, or already reported lost: nothing it does now is news. Errors while
    // the socket closes must not crash the process.
    for (const event of ['notification', 'end', 'error']) target.removeAllListeners(event);
    target.on('error', () => {});
    target.end().catch(() => {});
  };

  return {
    origin,
    async listen(handlers: AnnouncementHandlers) {
      if (client !== undefined) drop(client);
      const listener = new (loadPg().Client)({
        connectionString,
        connectionTimeoutMillis: 5_000,
        keepAlive: true,
        application_name: `topgun-listener-${origin}`,
      });
      let lost = false;
      const fail = (error: Error) => {
        if (lost) return;
        lost = true;
        drop(listener);
        handlers.onLost(error);
      };
      listener.on('error', fail);
      listener.on('end', () => fail(new Error('the listening connection closed')));
      listener.on('notification', ({ channel, payload }) => {
        if (lost || channel !== ANNOUNCEMENT_CHANNEL || payload === undefined) return;
        // Own announcements are skipped unread: this process merged its writes itself.
        if (
          payload.startsWith(ownPrefix) &&
          payload.startsWith(',"r":', payload.indexOf(',', ownPrefix.length))
        )
          return;
        let announcement: ReturnType<typeof parseAnnouncement>;
        try {
          announcement = parseAnnouncement(payload);
        } catch (error) {
          fail(new Error(`an unreadable announcement: ${(error as Error).message}`));
          return;
        }
        if ('mark' in announcement) {
          if (announcement.origin === origin)
            handlers.onMark(announcement.mark, announcement.sentAt);
        } else if (announcement.origin !== origin) {
          handlers.onRecords(announcement);
        }
      });
      client = listener;
      try {
        await listener.connect();
        await listener.query(`LISTEN ${ANNOUNCEMENT_CHANNEL}`);
      } catch (error) {
        lost = true;
        drop(listener);
        throw error;
      }
    },
    async mark(mark, sentAt) {
      if (client === undefined) throw new Error('not listening');
      await client.query('SELECT pg_notify($1, $2)', [
        ANNOUNCEMENT_CHANNEL,
        JSON.stringify({ o: origin, t: sentAt, m: mark }),
      ]);
    },
    async close() {
      if (client !== undefined) drop(client);
    },
  };
}
