/**
 * A failure a client can act on, reported as an `error` event with this code; never a crash. (A storage fault is
 * answered `storage_unavailable`: see storageFault in db/errors.ts.)
 */
export class ChatError extends Error {
  constructor(
    readonly code:
      | 'not_found'
      | 'agent_unavailable'
      | 'agent_busy'
      | 'invalid_image'
      | 'invalid_message'
      | 'budget_exceeded'
      | 'nothing_to_retry',
    message: string,
  ) {
    super(message);
    this.name = 'ChatError';
  }
}
