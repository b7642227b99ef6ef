import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { storageFault } from '../../db/errors.js';

export class NotFoundError extends Error {
  readonly statusCode = 404;
}

/**
 * Errors as `{"detail": "..."}` (what the seed's FastAPI clients read). Bad input is always a 4xx naming the
 * problem: 422 for a body or query that parses but breaks the schema (as FastAPI answers), 400 for bodies that are
 * not JSON at all. A 500 means a bug, is logged with its stack, and never leaks internals.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? 'request';
      const detail = err.validation
        .map((v) => {
          const field = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
          return field ? `${where}.${field}: ${v.message}` : `${where}: ${v.message}`;
        })
        .join('; ');
      return reply.code(422).send({ detail });
    }
    if (isResponseSerializationError(err)) {
      req.log.error({ err, issues: err.cause.issues }, 'response does not match its schema');
      return reply.code(500).send({ detail: 'internal error' });
    }
    const fault = storageFault(err);
    if (fault) {
      // Disk full, database locked or unreachable: the request can be repeated once the fault clears.
      req.log.warn({ fault: fault.kind, reason: err.message }, 'storage fault');
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ detail: `storage unavailable: ${fault.message}; nothing was changed, try again shortly` });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      req.log.error({ err }, 'request failed');
      return reply.code(status).send({ detail: 'internal error' });
    }
    return reply.code(status).send({ detail: err.message });
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ detail: `no route for ${req.method} ${req.url.split('?')[0]}` });
  });
}
