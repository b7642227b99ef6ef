import { z } from 'zod';

/**
 * The codes of the WebSocket `error` event: one list, which docs/protocol.md's table must match
 * (test/unit/protocol-doc.test.ts). An `error` without `query_id` answers a frame that could not be carried out;
 * with `query_id` it ends that query. On the wire `code` stays a plain string (ServerEventSchema): a client must
 * accept codes it does not know yet, so a code added here never breaks one.
 */
export const ErrorCodeSchema = z.enum([
  /** Not JSON, not text, or a field missing or of the wrong type. */
  'bad_frame',
  /** `type` is not one of the client frames. */
  'unknown_type',
  /** No such chat for this user, or no open permission request with that id. */
  'not_found',
  /** Empty content, or longer than MAX_MESSAGE_CHARS. */
  'invalid_message',
  /** Too many images, too large, bad base64, or bytes that are not the declared type. */
  'invalid_image',
  /** The agent cannot run (no credentials, start back-off, shutting down). */
  'agent_unavailable',
  /** Every agent allowed (MAX_LIVE_AGENTS) is busy answering. */
  'agent_busy',
  /** The model or the agent failed a query. */
  'agent_error',
  /** A cost budget is spent. */
  'budget_exceeded',
  /** A `retry` on a chat without any user message. */
  'nothing_to_retry',
  /** More `chat`/`retry` frames than MESSAGES_PER_MINUTE. */
  'rate_limited',
  /** The store cannot take the frame right now (disk full, locked, unreachable). */
  'storage_unavailable',
  /** A bug; logged with details on the server. */
  'internal',
  /** Several nodes: the node running the query was lost (killed, cut off); the next message resumes elsewhere. */
  'node_lost',
]);
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;
export const ERROR_CODES: readonly ErrorCode[] = ErrorCodeSchema.options;

/**
 * The codes a ChatError (a failure the chat runtime reports to the client, never a crash) can carry: those the
 * transport answers by itself (a frame it cannot parse, the rate limit, a storage fault, a bug) are not among them.
 */
export type ChatErrorCode = Exclude<ErrorCode, 'bad_frame' | 'unknown_type' | 'rate_limited' | 'storage_unavailable' | 'internal'>;

/**
 * A failure a client can act on, reported as an `error` event with this code; never a crash. (A storage fault is
 * answered `storage_unavailable`: see storageFault in db/errors.ts.)
 */
export class ChatError extends Error {
  constructor(
    readonly code: ChatErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ChatError';
  }
}
