import { z } from 'zod';
import type { RedisHandle } from '../cluster/redis.js';
import type { Principal } from './principal.js';
import { TICKET_TTL_MS } from './tickets.js';
import { hashToken, newTicket } from './tokens.js';
import type { WsTickets } from './ws-tickets.js';

/** What a ticket's key holds: the principal it stands for (written by this module only, still parsed). */
const StoredPrincipalSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('user'), userId: z.string(), name: z.string(), tokenId: z.string() }),
  z.object({ kind: z.literal('local'), authDisabled: z.boolean() }),
]);

/**
 * WebSocket tickets shared by every node: a ticket issued on one node opens a socket on any node, once. Redis
 * holds `<prefix>ticket:<SHA-256 of the ticket>` (never the ticket itself) with the ticket's lifetime as its own
 * (SET PX), and redeeming is GETDEL: of two nodes redeeming the same ticket at once, exactly one gets it.
 */
export class RedisTicketStore implements WsTickets {
  constructor(
    private readonly redis: RedisHandle,
    readonly ttlMs: number = TICKET_TTL_MS,
  ) {}

  async issue(principal: Principal): Promise<string> {
    const ticket = newTicket();
    await this.redis.client.set(this.key(ticket), JSON.stringify(principal), 'PX', this.ttlMs);
    return ticket;
  }

  async redeem(ticket: string): Promise<Principal | undefined> {
    const stored = await this.redis.client.getdel(this.key(ticket));
    if (stored === null) return undefined;
    const parsed = StoredPrincipalSchema.safeParse(JSON.parse(stored));
    return parsed.success ? parsed.data : undefined;
  }

  private key(ticket: string): string {
    return this.redis.key('ticket', hashToken(ticket));
  }
}
