import os from 'node:os';
import type { FastifyServerOptions } from 'fastify';
import { requestLogSerializer, secretRedactor } from '../auth/redact.js';
import type { Config } from '../config/config.js';

/**
 * The service's pino settings: JSON lines at LOG_LEVEL, requests logged with a redacted URL and no headers, the
 * credential-carrying headers redacted should a line include them, and every finished line passed through the
 * secret redactor (API tokens, bearer credentials, the service's own secrets) wherever they appear. Every line names
 * its node (`node`: NODE_ID), so the logs of a deployment's nodes can be read together.
 */
export function loggerOptions(config: Config): NonNullable<FastifyServerOptions['logger']> {
  const redactLine = secretRedactor([config.METRICS_TOKEN, config.ANTHROPIC_API_KEY, config.ANTHROPIC_AUTH_TOKEN]);
  return {
    level: config.LOG_LEVEL,
    base: { pid: process.pid, hostname: os.hostname(), node: config.NODE_ID },
    redact: ['req.headers.authorization', 'req.headers["sec-websocket-protocol"]', 'req.headers.cookie'],
    serializers: { req: requestLogSerializer },
    hooks: { streamWrite: redactLine },
  };
}
