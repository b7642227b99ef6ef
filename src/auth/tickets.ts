import { monotonicNow } from '../lib/clock.js';
import type { Principal } from './principal.js';
import { newTicket } from './tokens.js';

/** How long a WebSocket ticket can be used: enough to open a socket right after asking for it. */
export const TICKET_TTL_MS = 30_000;

/**
 * Short-lived, single-use WebSocket tickets, for browsers that want `?ticket=` rather than the subprotocol. A
 * ticket stands for the principal that asked for it, never appears in a URL for longer than TICKET_TTL_MS, and is
 * gone once used. In memory: a restart invalidates outstanding tickets, which costs a client one retry.
 */
export class TicketStore {
  private readonly tickets = new Map<string, { principal: Principal; expiresAt: number }>();

  constructor(
    private readonly now: () => number = monotonicNow,
    readonly ttlMs: number = TICKET_TTL_MS,
  ) {}

  issue(principal: Principal): string {
    this.sweep();
    const ticket = newTicket();
    this.tickets.set(ticket, { principal, expiresAt: this.now() + this.ttlMs });
    return ticket;
  }

  /** The ticket's principal if it is valid; the ticket is used up either way. */
  redeem(ticket: string): Principal | undefined {
    const entry = this.tickets.get(ticket);
    if (!entry) return undefined;
    this.tickets.delete(ticket);
    return entry.expiresAt > this.now() ? entry.principal : undefined;
  }

  get size(): number {
    return this.tickets.size;
  }

  /** Forgets expired tickets (on every issue, so unused tickets cannot pile up). */
  private sweep(): void {
    const now = this.now();
    for (const [ticket, entry] of this.tickets) if (entry.expiresAt <= now) this.tickets.delete(ticket);
  }
}
