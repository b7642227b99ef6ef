import { randomUUID } from 'node:crypto';

export type PermissionDecision =
  | { behavior: 'allow'; updatedInput: Record<string, unknown> }
  | { behavior: 'deny'; message: string };

export interface PermissionRequest {
  requestId: string;
  queryId: string;
  toolName: string;
  toolInput: Record<string, unknown>;
  toolUseId: string;
  expiresAt: string;
}

export type PermissionOutcome = 'allowed' | 'denied' | 'timeout' | 'cancelled';

interface Pending {
  request: PermissionRequest;
  settle(decision: PermissionDecision, outcome: PermissionOutcome): void;
}

/**
 * The questions a chat's agent asks its users before using a tool (`canUseTool`). Each question waits for one
 * answer from any subscriber of the chat; no answer within the timeout, a stop, or the SDK aborting the call
 * denies it. `remember` allows that tool for the rest of the chat's agent session without asking again.
 */
export class PermissionBroker {
  private readonly pending = new Map<string, Pending>();
  private readonly remembered = new Set<string>();

  constructor(
    private readonly timeoutMs: number,
    private readonly hooks: {
      asked(request: PermissionRequest): void;
      settled(request: PermissionRequest, outcome: PermissionOutcome): void;
    },
    private readonly now: () => number = Date.now,
  ) {}

  /** Open questions, oldest first (sent again to a client that subscribes). */
  open(): PermissionRequest[] {
    return [...this.pending.values()].map((p) => p.request);
  }

  /**
   * Asks the chat's users. `canAsk: false` (no subscriber can answer and PERMISSION_FALLBACK is `deny`) settles the
   * question at once, unasked: the tool is denied with a message that tells the model, and through the tool's
   * result the user, why.
   */
  ask(
    queryId: string,
    toolName: string,
    toolInput: Record<string, unknown>,
    options: { signal: AbortSignal; toolUseId: string; canAsk?: boolean },
  ): Promise<PermissionDecision> {
    if (this.remembered.has(toolName)) return Promise.resolve({ behavior: 'allow', updatedInput: toolInput });
    if (options.signal.aborted) return Promise.resolve({ behavior: 'deny', message: 'The request was cancelled.' });
    if (options.canAsk === false) return Promise.resolve({ behavior: 'deny', message: noPromptMessage(toolName) });
    const request: PermissionRequest = {
      requestId: randomUUID(),
      queryId,
      toolName,
      toolInput,
      toolUseId: options.toolUseId,
      expiresAt: new Date(this.now() + this.timeoutMs).toISOString(),
    };
    return new Promise<PermissionDecision>((resolve) => {
      const timer = setTimeout(
        () => settle({ behavior: 'deny', message: `No answer from the user within ${Math.round(this.timeoutMs / 1000)} s: not allowed.` }, 'timeout'),
        this.timeoutMs,
      );
      timer.unref();
      const onAbort = () => settle({ behavior: 'deny', message: 'The request was cancelled.' }, 'cancelled');
      const settle = (decision: PermissionDecision, outcome: PermissionOutcome) => {
        if (!this.pending.delete(request.requestId)) return;
        clearTimeout(timer);
        options.signal.removeEventListener('abort', onAbort);
        this.hooks.settled(request, outcome);
        resolve(decision);
      };
      options.signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(request.requestId, { request, settle });
      this.hooks.asked(request);
    });
  }

  /** A user's answer; false when no such question is open (already answered, timed out, or unknown). */
  answer(requestId: string, allow: boolean, remember = false): boolean {
    const pending = this.pending.get(requestId);
    if (!pending) return false;
    const { request } = pending;
    if (allow && remember) this.remembered.add(request.toolName);
    pending.settle(
      allow
        ? { behavior: 'allow', updatedInput: request.toolInput }
        : { behavior: 'deny', message: 'The user did not allow this.' },
      allow ? 'allowed' : 'denied',
    );
    return true;
  }

  /** Denies every open question (the query was stopped or the agent closed). */
  cancelAll(): void {
    for (const pending of [...this.pending.values()]) {
      pending.settle({ behavior: 'deny', message: 'The request was cancelled.' }, 'cancelled');
    }
  }

  /** A new agent session (clear_history) forgets what was remembered. */
  forget(): void {
    this.remembered.clear();
  }
}

/** The tool result of a question nobody could be asked (PERMISSION_FALLBACK=deny). */
export const noPromptMessage = (toolName: string) =>
  `Not allowed: ${toolName} needs the user's approval, and no client of this chat can show permission prompts, ` +
  'so it was denied without asking (PERMISSION_FALLBACK=deny). Tell the user that this needs a client that ' +
  'supports permission prompts, or a service that allows the tool.';
