/**
 * OFREP change-events tickets (server/ofrep/ofrep-events.ts): `<token id>.<HMAC-SHA256 of a fixed label, keyed by the
 * SDK key's stored hash>`. A browser's EventSource cannot send headers, so the event-stream URL carries this instead
 * of the key. The server's token store and a relay's key state both issue and check them, from the same stored hash,
 * so a ticket from either is valid at both and dies with the key.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The ticket of the SDK key `tokenId` whose stored hash is `storedHash`. */
export function eventsTicketOf(tokenId: string, storedHash: string): string {
  return `${tokenId}.${createHmac('sha256', storedHash).update('aviary-ofrep-events-v1').digest('base64url')}`;
}

/**
 * Checks a presented ticket: `expectedOf(tokenId)` is the ticket the named key would have (null when there is no such
 * active SDK key). Answers the token id when they match (compared in constant time), else null.
 */
export function ticketTokenId(ticket: string, expectedOf: (tokenId: string) => string | null): string | null {
  if (ticket.length > 512) return null;
  const dot = ticket.lastIndexOf('.');
  if (dot <= 0) return null;
  const tokenId = ticket.slice(0, dot);
  const expected = expectedOf(tokenId);
  if (expected === null || expected.length !== ticket.length) return null;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(ticket)) ? tokenId : null;
}
