/** A URL as logged: the value of a `ticket` query parameter (a WebSocket credential) replaced. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]ticket=)[^&#]*/gi, '$1[REDACTED]');
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
