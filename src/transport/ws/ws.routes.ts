import websocket from '@fastify/websocket';
import type { FastifyPluginAsync } from 'fastify';
import { ChatSocket, type ChatSocketDeps } from './chat-socket.js';

/** Largest inbound frame: a message with its images (base64 is 4/3 of the bytes) and some room for JSON. */
export const maxFrameBytes = (deps: ChatSocketDeps) =>
  Math.ceil(deps.images.maxBytes * deps.images.maxCount * 1.4) + deps.maxMessageChars * 4 + 64 * 1024;

/** `/ws/chat`: the live half of the wire contract. */
export const wsRoutes: FastifyPluginAsync<ChatSocketDeps> = async (app, deps) => {
  await app.register(websocket, { options: { maxPayload: maxFrameBytes(deps) } });
  app.get('/ws/chat', { websocket: true, schema: { hide: true } }, (socket, req) => {
    new ChatSocket(socket, deps, req.log).start();
  });
};
