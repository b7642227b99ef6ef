import type { FastifyInstance } from 'fastify';

class BadJsonError extends Error {
  readonly statusCode = 400;
}

/**
 * JSON bodies where an empty body means "no body": the seed's clients POST /api/chats with
 * `Content-Type: application/json` and nothing else. Fastify's own parser answers that with an error.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new BadJsonError(`body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });
}
