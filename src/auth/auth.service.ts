import type { Store } from '../store/store.js';
import { SETTING_AUTH_ENABLED } from '../store/settings.repository.js';
import { AUTH_DISABLED_PRINCIPAL, LOCAL_PRINCIPAL, type Principal } from './principal.js';
import { TicketStore } from './tickets.js';
import type { WsTickets } from './ws-tickets.js';
import { hashToken } from './tokens.js';

/**
 * - `local`: no user was ever added; the service works without tokens (it only starts on a loopback HOST).
 * - `enabled`: the first `users add` switched authentication on; every /api request and socket needs a token.
 *   It stays on, even when every token is revoked or every user removed.
 * - `disabled`: AUTH_DISABLED=true; no authentication at all, whatever the database says.
 */
export type AuthMode = 'local' | 'enabled' | 'disabled';

/** How often the service looks again whether the CLI switched authentication on meanwhile. */
export const AUTH_MODE_RECHECK_MS = 2_000;
/** last_used_at is written at most this often per token: no database write per request. */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;

export interface AuthServiceOptions {
  store: Store;
  /** AUTH_DISABLED. */
  disabled: boolean;
  now?: () => number;
  recheckMs?: number;
  /** Where WebSocket tickets live: in this process by default, in Redis with several nodes. */
  tickets?: WsTickets;
}

/** Verifies credentials into principals, and knows whether authentication is in force. */
export class AuthService {
  readonly tickets: WsTickets;
  private readonly store: Store;
  private readonly now: () => number;
  private readonly recheckMs: number;
  private current: AuthMode;
  private checkedAt = -Infinity;
  private pending: Promise<AuthMode> | undefined;

  constructor(options: AuthServiceOptions) {
    this.store = options.store;
    this.now = options.now ?? (() => Date.now());
    this.recheckMs = options.recheckMs ?? AUTH_MODE_RECHECK_MS;
    this.tickets = options.tickets ?? new TicketStore(this.now);
    this.current = options.disabled ? 'disabled' : 'local';
  }

  /**
   * The mode in force. `enabled` is final once seen; `local` is re-read from the database at most every
   * AUTH_MODE_RECHECK_MS, so a `users add` run from the CLI while the service runs takes effect within seconds.
   */
  async mode(): Promise<AuthMode> {
    if (this.current !== 'local' || this.now() - this.checkedAt < this.recheckMs) return this.current;
    this.pending ??= this.store.settings
      .get(SETTING_AUTH_ENABLED)
      .then((value) => {
        this.checkedAt = this.now();
        if (value === '1') this.current = 'enabled';
        return this.current;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }

  /** The principal of a request or socket that shows no credentials: only when authentication is not in force. */
  async anonymous(): Promise<Principal | undefined> {
    const mode = await this.mode();
    if (mode === 'disabled') return AUTH_DISABLED_PRINCIPAL;
    if (mode === 'local') return LOCAL_PRINCIPAL;
    return undefined;
  }

  /** The user an API token belongs to, or undefined for an unknown or revoked token. */
  async verifyToken(token: string): Promise<Principal | undefined> {
    const row = await this.store.tokens.findActive(hashToken(token));
    if (!row) return undefined;
    const now = this.now();
    if (row.last_used_at === null || now - Date.parse(row.last_used_at) >= LAST_USED_WRITE_INTERVAL_MS) {
      await this.store.tokens.markUsed(row.id, new Date(now));
    }
    return { kind: 'user', userId: row.user_id, name: row.user_name, tokenId: row.id };
  }

  /**
   * Whether a principal admitted earlier (a long-lived WebSocket) may still act: its token is not revoked (nor its
   * user removed), or, for a socket of local mode, authentication has not been switched on since.
   */
  async stillValid(principal: Principal): Promise<boolean> {
    if (principal.kind === 'user') return this.store.tokens.isActive(principal.tokenId);
    return (await this.mode()) !== 'enabled';
  }
}
