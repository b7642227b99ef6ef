/**
 * Credentials never reach the log, wherever a client put them: the query string (a `ticket`, or a token where none
 * belongs), the `Authorization` header, the `bearer.<token>` WebSocket subprotocol, an error message quoting any of
 * them. Two layers: the request serializer logs a redacted URL and no headers, and every finished log line passes
 * through redactSecrets (pino's streamWrite hook) as a net for what the first layer cannot foresee.
 */

/** Query parameters whose value is a credential, by name. */
const SECRET_PARAMS = /([?&](?:ticket|token|access_token|auth|authorization|bearer|api_key|apikey|key|password|secret)=)[^&#\s"]*/gi;
/** An API token (`act_` + 43 base64url characters) anywhere. */
const API_TOKEN = /act_[A-Za-z0-9_-]{8,}/g;
/** `bearer.<token>` (the subprotocol) and `Bearer <token>` (the header), whatever the token looks like. */
const BEARER_SUBPROTOCOL = /(bearer\.)[^\s,"'\\]+/gi;
const BEARER_HEADER = /(Bearer\s+)[^\s,"'\\]+/gi;
const REDACTED = '[REDACTED]';

/** A URL as logged: credential-carrying query values and API tokens replaced. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_PARAMS, `$1${REDACTED}`).replace(API_TOKEN, `act_${REDACTED}`);
}

/**
 * A redactor for whole log lines: API tokens, bearer credentials, and the given literal secrets (the service's
 * own, e.g. METRICS_TOKEN and the model key) replaced.
 */
export function secretRedactor(literals: readonly (string | undefined)[] = []): (line: string) => string {
  const known = literals.filter((s): s is string => typeof s === 'string' && s.length >= 8);
  return (line) => {
    let out = line
      .replace(API_TOKEN, `act_${REDACTED}`)
      .replace(BEARER_SUBPROTOCOL, `$1${REDACTED}`)
      .replace(BEARER_HEADER, `$1${REDACTED}`)
      .replace(SECRET_PARAMS, `$1${REDACTED}`);
    for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  };
}

/**
 * Fastify's request log serializer with the URL redacted (its default logs `req.url` verbatim). Headers are not
 * logged at all; server.ts also redacts the credential-carrying ones in case a log line includes them.
 */
export function requestLogSerializer(req: {
  method: string;
  url: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}): Record<string, unknown> {
  return {
    method: req.method,
    url: redactUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}
