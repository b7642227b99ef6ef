import type { FastifyBaseLogger } from 'fastify';
import type { AuthService } from './auth.service.js';
import { isLoopbackHost } from './loopback.js';

/** The service would be reachable from other machines without authentication: it does not start (exit 2). */
export class StartupRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupRefusedError';
  }
}

/**
 * Before any user exists the service needs no token, which is only safe when nothing but this machine can reach
 * it. So on a HOST other than loopback it refuses to start until authentication is on (a user was added) or is
 * explicitly disabled (AUTH_DISABLED=true, for a service behind an authenticating proxy: warned about loudly).
 */
export async function checkExposure(
  { host, authDisabled }: { host: string; authDisabled: boolean },
  auth: AuthService,
  log: FastifyBaseLogger,
): Promise<void> {
  if (authDisabled) {
    log.warn(
      { host },
      'AUTHENTICATION IS DISABLED (AUTH_DISABLED=true): anyone who can reach this service can read every chat and ' +
        "run the agent's tools. Only run it like this behind a proxy that authenticates.",
    );
    return;
  }
  if (isLoopbackHost(host) || (await auth.mode()) === 'enabled') return;
  throw new StartupRefusedError(
    `Refusing to start: HOST=${host} is reachable from other machines and no user exists yet, so anyone could ` +
      "use the service (and the agent's tools) without a token.\n" +
      '  - add a user first: npm run cli -- users add NAME   (authentication is on from then on), or\n' +
      '  - listen on loopback only: HOST=127.0.0.1, or\n' +
      '  - if a proxy in front authenticates: AUTH_DISABLED=true',
  );
}
