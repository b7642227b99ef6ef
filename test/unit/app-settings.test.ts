import { describe, expect, it } from 'vitest';
import { appSettings } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';

describe('appSettings', () => {
  const config = loadConfig({
    MAX_IMAGES_PER_MESSAGE: '3',
    MAX_IMAGE_BYTES: '1000',
    MAX_MESSAGE_CHARS: '500',
    AGENT_API_TIMEOUT_MS: '20000',
    MESSAGES_PER_MINUTE: '7',
    MAX_COST_PER_MESSAGE_USD: '0.5',
  });
  const settings = appSettings(config);

  it('gives every part that checks a message the same limits, from one place', () => {
    expect(settings.images).toEqual({ maxCount: 3, maxBytes: 1000 });
    expect(settings.socket.images).toBe(settings.images);
    expect(settings.chats.importLimits?.images).toBe(settings.images);
    expect(settings.socket.maxMessageChars).toBe(500);
    expect(settings.chats.importLimits?.maxMessageChars).toBe(500);
  });

  it('derives what the parts need from the configuration', () => {
    expect(settings.agents.modelSilenceMs).toBeGreaterThan(20_000);
    expect(settings.agents.budgets).toEqual({ perMessageUsd: 0.5 });
    expect(settings.socket.messagesPerMinute).toBe(7);
    expect(settings.rest.pageSize).toBe(config.PAGE_SIZE);
  });
});
