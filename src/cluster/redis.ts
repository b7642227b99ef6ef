import type { Redis, RedisOptions } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { redactUrl } from '../config/config.js';
import { withTimeout } from '../lib/timeout.js';

/** How long a start-up connection attempt may take before the service gives up with RedisUnavailableError. */
const CONNECT_TIMEOUT_MS = 5_000;
/** A command sent while Redis is away is retried this often after reconnecting, then fails (callers decide). */
const MAX_RETRIES_PER_REQUEST = 2;
/** A connection that does not answer QUIT at shutdown within this is dropped. */
const QUIT_TIMEOUT_MS = 1_000;
/** While Redis stays unreachable, the same connection error is logged at most this often. */
const ERROR_LOG_INTERVAL_MS = 30_000;

export interface RedisSettings {
  /** REDIS_URL (may carry a password: only its redacted form is ever logged). */
  url: string;
  /** REDIS_KEY_PREFIX: every key and channel of this deployment starts with it. */
  keyPrefix: string;
}

/** Redis is configured but did not answer at start-up: the service does not start (exit code 1, one clear line). */
export class RedisUnavailableError extends Error {
  constructor(url: string, cause: string) {
    super(`Redis at ${redactUrl(url)} (REDIS_URL) is unreachable: ${cause}`);
    this.name = 'RedisUnavailableError';
  }
}

/**
 * The node's way to the shared Redis, made once in buildApp and handed to every part that shares state between
 * nodes. `client` is the connection for ordinary commands (and scripts); a part that blocks a connection (a
 * subscriber, XREAD BLOCK) opens one of its own with `open()`. Every connection made here has an error listener (a
 * Redis fault is logged, never an uncaught 'error' that ends the process), reconnects by itself, and is closed by
 * `close()` when the app closes.
 *
 * Keys are not prefixed by ioredis (its keyPrefix misses channels and some commands): build every key and channel
 * name with `key()`.
 */
export interface RedisHandle {
  readonly client: Redis;
  readonly keyPrefix: string;
  /** `<REDIS_KEY_PREFIX><parts joined by ':'>`, e.g. key('ticket', id) → `agent-chat:ticket:<id>`. */
  key(...parts: string[]): string;
  /** Another connection, connected before it is returned (throws RedisUnavailableError otherwise). */
  open(name: string, options?: RedisOptions): Promise<Redis>;
  /** Answers PING within `timeoutMs`, or rejects (readiness). */
  ping(timeoutMs?: number): Promise<void>;
  /** Closes every connection made here (QUIT, then a hard disconnect for one that does not answer). */
  close(): Promise<void>;
}

/** Connects to Redis (the main connection) and returns the handle; throws RedisUnavailableError if it cannot. */
export async function openRedis(settings: RedisSettings, log: FastifyBaseLogger): Promise<RedisHandle> {
  // Loaded only in multi-node mode: a single node does not pay for the client.
  const { Redis } = await import('ioredis');
  const connections = new Set<Redis>();

  const open = async (name: string, options: RedisOptions = {}): Promise<Redis> => {
    const connection = new Redis(settings.url, {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: MAX_RETRIES_PER_REQUEST,
      connectionName: name,
      ...options,
    });
    let lastError: { message: string; at: number } | undefined;
    connection.on('error', (err: Error) => {
      const now = Date.now();
      if (lastError?.message === err.message && now - lastError.at < ERROR_LOG_INTERVAL_MS) return;
      lastError = { message: err.message, at: now };
      log.warn({ err, redis: name }, 'Redis connection error; reconnecting');
    });
    connection.on('ready', () => {
      if (lastError) log.info({ redis: name }, 'Redis connection restored');
      lastError = undefined;
    });
    connections.add(connection);
    try {
      await connection.connect();
    } catch (err) {
      // connect() only says "Connection is closed"; the error event said why.
      const cause = lastError?.message ?? (err instanceof Error ? err.message : String(err));
      connections.delete(connection);
      connection.disconnect();
      throw new RedisUnavailableError(settings.url, cause);
    }
    return connection;
  };

  const client = await open('main');
  log.info({ redis: redactUrl(settings.url), keyPrefix: settings.keyPrefix }, 'connected to Redis (multi-node mode)');
  return {
    client,
    keyPrefix: settings.keyPrefix,
    key: (...parts) => settings.keyPrefix + parts.join(':'),
    open,
    ping: async (timeoutMs = 2_000) => {
      await withTimeout(client.ping(), timeoutMs, 'Redis PING');
    },
    close: async () => {
      await Promise.all(
        [...connections].map(async (connection) => {
          connections.delete(connection);
          if (connection.status === 'end') return;
          const ended = new Promise((resolve) => connection.once('end', resolve));
          try {
            await withTimeout(connection.quit(), QUIT_TIMEOUT_MS, 'Redis QUIT');
          } catch {
            // Unreachable or already closing: the disconnect below ends it either way.
          }
          connection.disconnect();
          await withTimeout(ended, QUIT_TIMEOUT_MS, 'Redis close').catch(() => undefined);
        }),
      );
    },
  };
}
