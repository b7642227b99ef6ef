import { createHash, randomBytes } from 'node:crypto';

/** Every API token starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const TOKEN_PREFIX = 'act_';
/** How many leading characters of a token are stored in clear to tell tokens apart in listings. */
export const DISPLAY_PREFIX_LENGTH = 8;

/** A new API token: `act_` + 32 random bytes, base64url (256 bits: guessing is hopeless, so a fast hash is fine). */
export const newApiToken = (): string => TOKEN_PREFIX + randomBytes(32).toString('base64url');

/** What is stored instead of the token: its SHA-256, hex. */
export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

export const displayPrefix = (token: string): string => token.slice(0, DISPLAY_PREFIX_LENGTH);

/** A random opaque secret for a WebSocket ticket. */
export const newTicket = (): string => randomBytes(24).toString('base64url');

/** The token of an `Authorization: Bearer <token>` header, or undefined when the header is absent or not Bearer. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}
