import type { Principal } from './principal.js';

/**
 * WebSocket tickets as the REST route and the socket admission see them: issued for a principal, redeemed once
 * within `ttlMs`. One node keeps them in memory (TicketStore); several nodes keep them in Redis (RedisTicketStore),
 * because a browser's ticket request and its socket may reach different nodes.
 */
export interface WsTickets {
  readonly ttlMs: number;
  issue(principal: Principal): string | Promise<string>;
  /** The ticket's principal if it is valid; the ticket is used up either way. */
  redeem(ticket: string): Principal | undefined | Promise<Principal | undefined>;
}
