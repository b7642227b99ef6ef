import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/**
 * CORS for the REST API, for the exact origins of CORS_ORIGINS (none by default: no CORS headers at all).
 * Registered before the auth hook, so preflights are answered without credentials and refusals (401, 429) carry
 * the headers a browser needs to read them. Tokens travel in a header, never cookies: no credentials mode.
 */
export async function registerCors(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  if (origins.length === 0) return;
  await app.register(cors, {
    origin: [...origins],
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['Retry-After', 'WWW-Authenticate'],
    credentials: false,
    maxAge: 600,
  });
}
