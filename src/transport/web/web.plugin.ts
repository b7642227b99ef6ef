import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Where `npm run build:web` (Vite) writes the client: index.html, favicon.svg and content-hashed assets/. */
export const WEB_DIST_DIR = path.resolve(import.meta.dirname, '../../../web/dist');

/** Hashed file names change with their content, so browsers may keep them for good. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html names the current hashed assets: always revalidated, so a new build is picked up at once. */
const REVALIDATE = 'no-cache';

/**
 * The page's own URLs. Client-side routes live under `/c/` only (e.g. `/c/<chat id>`), so the single-page fallback
 * can never shadow `/api`, `/ws`, `/docs`, `/healthz`, `/readyz`, `/metrics` or `/openapi.json`: an unknown path
 * elsewhere stays a `{detail}` 404. These routes are public (the page itself holds no data; the API it calls does
 * authenticate).
 */
export function isWebClientRoute(routeUrl: string): boolean {
  return routeUrl === '/' || routeUrl === '/c/*' || routeUrl === '/favicon.svg' || routeUrl.startsWith('/assets/');
}

/** Serves the built web client at `/`. Without a build it says how to make one instead of a bare 404. */
export async function webClientPlugin(app: FastifyInstance, { distDir = WEB_DIST_DIR }: { distDir?: string } = {}) {
  const indexFile = path.join(distDir, 'index.html');
  await app.register(fastifyStatic, {
    root: path.join(distDir, 'assets'),
    prefix: '/assets/',
    // One route per built file (found at start), no catch-all: a missing asset is an ordinary 404.
    wildcard: false,
    index: false,
    cacheControl: false,
    setHeaders: (res) => res.setHeader('cache-control', IMMUTABLE),
  });

  const sendIndex = (reply: FastifyReply) => {
    if (!fs.existsSync(indexFile)) {
      return reply
        .code(503)
        .header('cache-control', 'no-store')
        .type('text/plain; charset=utf-8')
        .send('The web client is not built yet: run `npm run build:web` (npm install and npm start do it for you).\n');
    }
    return reply.header('cache-control', REVALIDATE).sendFile('index.html', distDir, { cacheControl: false });
  };
  const page = { schema: { hide: true } };
  app.get('/', page, (_req, reply) => sendIndex(reply));
  app.get('/c/*', page, (_req, reply) => sendIndex(reply));
  app.get('/favicon.svg', page, (_req, reply) =>
    reply.header('cache-control', 'public, max-age=86400').sendFile('favicon.svg', distDir, { cacheControl: false }),
  );
}
