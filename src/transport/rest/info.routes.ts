import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { IMAGE_MEDIA_TYPES } from '../../protocol/chat.js';
import { ServiceInfoSchema, type ServiceInfo } from '../../protocol/rest.js';

export interface InfoRoutesOptions {
  info: ServiceInfo;
}

/** `GET /api/info`: what a client needs to know about this service before it talks to it (limits, demo mode). */
export const infoRoutes: FastifyPluginAsyncZod<InfoRoutesOptions> = async (app, { info }) => {
  app.get('/api/info', {
    schema: { tags: ['chats'], summary: 'Service version, demo mode and message limits', response: { 200: ServiceInfoSchema } },
    handler: async () => info,
  });
};

export function serviceInfo(
  version: string,
  config: { DEMO_MODE: boolean; MAX_MESSAGE_CHARS: number; MAX_IMAGES_PER_MESSAGE: number; MAX_IMAGE_BYTES: number },
): ServiceInfo {
  return {
    version,
    demo: config.DEMO_MODE,
    limits: {
      max_message_chars: config.MAX_MESSAGE_CHARS,
      max_images_per_message: config.MAX_IMAGES_PER_MESSAGE,
      max_image_bytes: config.MAX_IMAGE_BYTES,
      image_media_types: [...IMAGE_MEDIA_TYPES],
    },
  };
}
