import type { OwnerScope } from '../store/chats.repository.js';

/**
 * Who is making a request or holds a socket.
 * - `user`: authenticated with one of their API tokens (or a ticket issued to them); sees their own chats.
 * - `local`: no authentication in force, either local mode (no user yet, loopback only) or AUTH_DISABLED=true;
 *   sees the chats without an owner.
 */
export type Principal =
  | { kind: 'user'; userId: string; name: string; tokenId: string }
  | { kind: 'local'; authDisabled: boolean };

export const LOCAL_PRINCIPAL: Principal = Object.freeze({ kind: 'local', authDisabled: false });
export const AUTH_DISABLED_PRINCIPAL: Principal = Object.freeze({ kind: 'local', authDisabled: true });

/** The chats a principal may see. */
export const ownerScope = (principal: Principal): OwnerScope => ({
  userId: principal.kind === 'user' ? principal.userId : null,
});

/**
 * Local mode is the machine owner's own service on loopback: no rate limit or quota applies to it, so it behaves
 * exactly as before users existed.
 */
export const isUnlimited = (principal: Principal): boolean => principal.kind === 'local' && !principal.authDisabled;

/**
 * The key rate limits count against, or undefined when none apply (isUnlimited). A user is one key however many
 * tokens and sockets they use; without authentication (AUTH_DISABLED) the client's IP is.
 */
export function limitKey(principal: Principal, ip: string): string | undefined {
  if (principal.kind === 'user') return `user:${principal.userId}`;
  return isUnlimited(principal) ? undefined : `ip:${ip}`;
}
