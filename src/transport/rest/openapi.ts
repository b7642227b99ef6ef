import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

/** OpenAPI generated from the same zod schemas that validate requests: `/docs` (Swagger UI) and `/openapi.json`. */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'Agent chat backend',
        description:
          'Chats with a tool-using agent (Claude Agent SDK). REST manages chats and history; live answers stream ' +
          'over the WebSocket at /ws/chat (see docs/protocol.md).',
        version,
      },
      tags: [
        { name: 'chats', description: 'Chats and their stored history' },
        { name: 'auth', description: 'WebSocket tickets' },
        { name: 'operations', description: 'Probes for operators' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API token from `npm run cli -- users add NAME` or `tokens create USER`. Needed once a user exists; ' +
              'before that (local mode, loopback only) requests need none.',
          },
        },
      },
      security: [{ bearerAuth: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
