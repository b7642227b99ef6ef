import type { PermissionMode } from '../protocol/chat.js';
import type { PermissionAsk, PermissionDecision } from './permission-broker.js';

/**
 * What an agent connection reports, already reduced from the SDK's message zoo to what a chat needs. Only
 * sdk-connection.ts knows the SDK's own types; everything else in the service speaks these.
 */
export type AgentEvent =
  /** The CLI is up for a turn; `sessionId` is the SDK session holding the model context. */
  | { kind: 'init'; sessionId: string }
  /** A text block started streaming. */
  | { kind: 'text_start' }
  | { kind: 'text_delta'; text: string }
  | { kind: 'text_end' }
  /** Text that arrived whole, without streaming (e.g. a non-streaming fallback). */
  | { kind: 'text_whole'; text: string }
  | { kind: 'tool_use'; toolUseId: string; toolName: string; input: Record<string, unknown> }
  | { kind: 'tool_result'; toolUseId: string; content: string; isError: boolean }
  /** The model's API failed for this turn (after the CLI's retries). */
  | { kind: 'api_error'; code: string; message: string }
  | { kind: 'api_retry'; attempt: number; maxRetries: number; status: number | null; delayMs: number }
  /** The turn for one user message ended. `totalCostUsd` is cumulative over the connection's life; `usage` is this turn's. */
  | {
      kind: 'turn_end';
      usage: TurnUsage;
      sessionId: string;
      success: boolean;
      subtype: string;
      totalCostUsd: number;
      durationMs: number;
      errors: string[];
      terminalReason: string | null;
      /**
       * The SDK uuid of the turn's last entry in the session's transcript (its last assistant message or tool
       * result): resuming the session at it (`resumeAt`) continues from the end of this answer. Null if the turn
       * reported none.
       */
      tailUuid: string | null;
    };

/** Tokens of one turn (the SDK result's per-turn `usage`, never its cumulative totals) and the model that answered. */
export interface TurnUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheCreationInputTokens: number;
  model: string | null;
}

export interface AgentImage {
  mediaType: string;
  base64: string;
}

/**
 * A chat's own agent settings (already checked against what the operator allows); each absent one is the
 * service's. The connection is started with them; model and permission mode can change while it runs.
 */
export interface ChatAgentSettings {
  model?: string;
  permissionMode?: PermissionMode;
  /** Appended to the service's system prompt. */
  systemPromptAppend?: string;
  /** Replaces the service's ALLOWED_TOOLS (a subset of it). */
  allowedTools?: string[];
}

export interface AgentConnection {
  /** Sends one user message; its turn ends with exactly one `turn_end` (or the connection closing). */
  send(text: string, images: AgentImage[]): void;
  /** Switches the model for the next model calls; undefined: the service's model. */
  setModel(model: string | undefined): Promise<void>;
  /**
   * Switches the permission mode for the next tool calls; undefined: the service's mode. False when this process
   * cannot switch to it (it was started without a way to ask): the chat then replaces the process.
   */
  setPermissionMode(mode: PermissionMode | undefined): Promise<boolean>;
  /** Asks the CLI to stop the running turn. May hang on some upstream paths: callers put a timeout on it. */
  interrupt(): Promise<void>;
  /** Ends the CLI process. Idempotent. */
  close(): void;
  /** Settles when the connection's message loop has ended and its process has exited; `error` if abnormally. */
  readonly ended: Promise<{ error?: Error }>;
  /** The agent process id, once started (for operators and tests). */
  readonly pid: number | undefined;
  /** When the process last reported anything (lib/clock.ts monotonicNow()): how the chat tells a stalled model from a slow one. */
  readonly lastActivityAt: number;
}

export interface AgentConnectionRequest {
  chatId: string;
  cwd: string;
  /** SDK session to continue, so the model sees the chat's earlier turns. */
  resume?: string;
  /**
   * With `resume`: continue the session only up to this entry (a fork or retry point) and as a new session (the
   * SDK's `resumeSessionAt` + `forkSession`), so what came after it is not in the model's context.
   */
  resumeAt?: string;
  /** The chat's own settings (absent ones: the service's). */
  settings?: ChatAgentSettings;
  /** The SDK's maxBudgetUsd: what this process may spend in all (it counts from its start); the turn then ends. */
  maxBudgetUsd?: number;
  onEvent(event: AgentEvent): void;
  /** Asked before a tool that is not pre-allowed runs (permission modes that ask). */
  canUseTool(toolName: string, input: Record<string, unknown>, options: PermissionAsk): Promise<PermissionDecision>;
}

export type AgentConnectionFactory = (request: AgentConnectionRequest) => Promise<AgentConnection>;
