import { randomUUID } from 'node:crypto';
import type { RememberRule } from '../protocol/chat.js';
import { rememberRuleFor, ruleAllows, type SuggestedRule } from './permission-rules.js';

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
  /** What answering with `remember` would allow from then on (shown to the user with the question). */
  rememberRule: RememberRule;
}

/** What the SDK tells about one call that needs approval, beside the tool and its input. */
export interface PermissionAsk {
  signal: AbortSignal;
  toolUseId: string;
  /** The `allow` rules the SDK suggests for remembering this approval. */
  suggestions?: SuggestedRule[];
  /** The SDK's own rule would grant more than this call: remember only the exact call. */
  suppressRule?: boolean;
}

/** A chat's remembered rules, as the broker reads and adds them (PermissionRulesRepository, bound to the chat). */
export interface RememberedRules {
  list(): Promise<Array<Pick<RememberRule, 'tool_name' | 'kind' | 'pattern'>>>;
  add(rule: RememberRule): Promise<unknown>;
}

export type PermissionOutcome = 'allowed' | 'denied' | 'timeout' | 'cancelled';

interface Pending {
  request: PermissionRequest;
  settle(decision: PermissionDecision, outcome: PermissionOutcome): void;
}

/**
 * The questions a chat's agent asks its users before using a tool (`canUseTool`). Each question waits for one
 * answer from any subscriber of the chat; no answer within the timeout, a stop, or the SDK aborting the call
 * denies it. `remember` stores the question's rule (permission-rules.ts: what was approved, never the whole tool)
 * for the chat; a later call that a stored rule allows runs without a question. The rules are read from the store
 * on every question, so they outlive the agent process and a revoked rule asks again at once.
 */
export class PermissionBroker {
  private readonly pending = new Map<string, Pending>();
  /** Rules being stored: a question asked meanwhile waits for them. */
  private storing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: {
      timeoutMs: number;
      /** The chat's workspace: relative paths in tool inputs and rules are resolved against it. */
      cwd: string;
      rules: RememberedRules;
      asked(request: PermissionRequest): void;
      settled(request: PermissionRequest, outcome: PermissionOutcome): void;
      /** A rule could not be read or stored (the question is asked as if there were none). */
      failed(err: unknown, what: string): void;
      now?: () => number;
    },
  ) {}

  private get timeoutMs(): number {
    return this.deps.timeoutMs;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Open questions, oldest first (sent again to a client that subscribes). */
  open(): PermissionRequest[] {
    return [...this.pending.values()].map((p) => p.request);
  }

  /**
   * Asks the chat's users. `canAsk: false` (no subscriber can answer and PERMISSION_FALLBACK is `deny`) settles the
   * question at once, unasked: the tool is denied with a message that tells the model, and through the tool's
   * result the user, why.
   */
  async ask(
    queryId: string,
    toolName: string,
    toolInput: Record<string, unknown>,
    options: PermissionAsk & { canAsk?: boolean },
  ): Promise<PermissionDecision> {
    if (await this.remembered(toolName, toolInput)) return { behavior: 'allow', updatedInput: toolInput };
    if (options.signal.aborted) return { behavior: 'deny', message: 'The request was cancelled.' };
    if (options.canAsk === false) return { behavior: 'deny', message: noPromptMessage(toolName) };
    const request: PermissionRequest = {
      requestId: randomUUID(),
      queryId,
      toolName,
      toolInput,
      toolUseId: options.toolUseId,
      expiresAt: new Date(this.now() + this.timeoutMs).toISOString(),
      rememberRule: rememberRuleFor(toolName, toolInput, this.deps.cwd, options.suggestions, options.suppressRule),
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
        this.deps.settled(request, outcome);
        resolve(decision);
      };
      options.signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(request.requestId, { request, settle });
      this.deps.asked(request);
    });
  }

  /** A user's answer; false when no such question is open (already answered, timed out, or unknown). */
  answer(requestId: string, allow: boolean, remember = false): boolean {
    const pending = this.pending.get(requestId);
    if (!pending) return false;
    const { request } = pending;
    if (allow && remember) {
      this.storing = Promise.all([
        this.storing,
        this.deps.rules.add(request.rememberRule).catch((err: unknown) => this.deps.failed(err, 'store a remembered rule')),
      ]);
    }
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

  /** Whether a rule the chat remembered allows this call. */
  private async remembered(toolName: string, toolInput: Record<string, unknown>): Promise<boolean> {
    try {
      await this.storing;
      const rules = await this.deps.rules.list();
      return rules.some((rule) => ruleAllows(rule, toolName, toolInput, this.deps.cwd));
    } catch (err) {
      this.deps.failed(err, 'read the remembered rules');
      return false;
    }
  }
}

/** The tool result of a question nobody could be asked (PERMISSION_FALLBACK=deny). */
export const noPromptMessage = (toolName: string) =>
  `Not allowed: ${toolName} needs the user's approval, and no client of this chat can show permission prompts, ` +
  'so it was denied without asking (PERMISSION_FALLBACK=deny). Tell the user that this needs a client that ' +
  'supports permission prompts, or a service that allows the tool.';
