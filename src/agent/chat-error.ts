import type { ChatErrorCode } from '../protocol/errors.js';

/**
 * A failure a client can act on, reported as an `error` event with this code; never a crash. (A storage fault is
 * answered `storage_unavailable`: see storageFault in db/errors.ts.) The codes are listed in protocol/errors.ts.
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
