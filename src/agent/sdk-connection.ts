import { monotonicNow } from '../lib/clock.js';
import fs from 'node:fs';
import type {
  McpServerConfig,
  Options,
  PermissionMode,
  PermissionUpdate,
  Query,
  SDKMessage,
  SDKUserMessage,
} from '@anthropic-ai/claude-agent-sdk';
import type { FastifyBaseLogger } from 'fastify';
import { resolveAgentExecutable } from './agent-executable.js';
import { chatAgentEnv } from './agent-env.js';
import { chatAgentHome, ensureChatAgentHome, sharedTmpDir } from './agent-home.js';
import type { AgentPriority } from './agent-priority.js';
import { AgentProcess } from './agent-process.js';
import { removeResumeDir } from './resume-dirs.js';
import type { AgentSessionStore } from './chat-transcripts.js';
import type { BwrapSandbox } from './confinement.js';
import { GUARDED_TOOLS, outsideWorkspace } from './workspace-guard.js';
import type { SuggestedRule } from './permission-rules.js';
import { AsyncQueue } from './async-queue.js';
import type { AgentConnection, AgentConnectionFactory, AgentConnectionRequest, AgentEvent, AgentImage } from './agent-events.js';

/** The agent settings every connection shares (from Config, resolved once in buildApp). */
export interface SdkAgentSettings {
  systemPrompt: string;
  maxTurns: number;
  allowedTools: string[];
  permissionMode: Options['permissionMode'];
  model?: string;
  mcpServers?: Record<string, McpServerConfig>;
  /**
   * The CLI's environment shared by all chats (each adds its own home): the SDK replaces the child's environment
   * with it, no merge.
   */
  env: Record<string, string>;
  /** AGENT_HOME_DIR: each chat's agent gets its own home below it (agent-home.ts). */
  agentHomeDir: string;
  /** Start each CLI inside this bubblewrap namespace (confinement.ts); unconfined when absent. */
  confinement?: BwrapSandbox;
  /** Run Bash commands in the CLI's OS sandbox, and never outside it. */
  sandbox?: boolean;
  /** The agent CLI to run instead of the SDK's bundled one. */
  cliPath?: string;
  /** AGENT_NICE: agents run at a lower CPU priority than the service (agent-priority.ts); absent: the same. */
  priority?: AgentPriority;
  /**
   * Where a chat's session transcripts are mirrored and resumed from (SESSION_STORE=database, chat-transcripts.ts);
   * undefined: the CLI's own files in the chat's agent home.
   */
  sessionStore?(chatId: string): AgentSessionStore | undefined;
}

/**
 * The only module that talks to the Claude Agent SDK. One connection = one long-lived `query()` in streaming-input
 * mode (one CLI process serving many turns of one chat), reduced to AgentEvents.
 */
export function sdkConnectionFactory(settings: SdkAgentSettings, log: FastifyBaseLogger): AgentConnectionFactory {
  // The operator's AGENT_CLI_PATH, else the bundled CLI found once, not per query() (see resolveAgentExecutable).
  // Undefined leaves the search (and its error) to the SDK.
  const executable = settings.cliPath ?? resolveAgentExecutable();
  return async (request) => {
    const { query } = await loadSdk();
    return new SdkConnection(query, settings, executable, request, log.child({ chat_id: request.chatId }));
  };
}

type QueryFunction = typeof import('@anthropic-ai/claude-agent-sdk').query;
let sdk: Promise<{ query: QueryFunction }> | undefined;
/**
 * The SDK is loaded when the first agent starts, not with the service: its code is ~32 MB of RSS (12 MB of heap)
 * that a service with no live agent, and its start-up, do without. Once loaded it stays.
 */
function loadSdk(): Promise<{ query: QueryFunction }> {
  sdk ??= import('@anthropic-ai/claude-agent-sdk');
  return sdk;
}

/** After the CLI process exited, how long the SDK gets to end its message loop by itself (see exitUnnoticed). */
const LOOP_END_AFTER_EXIT_MS = 2_000;

class SdkConnection implements AgentConnection {
  private readonly input = new AsyncQueue<SDKUserMessage>();
  private readonly query: Query;
  private readonly reducer: MessageReducer;
  private readonly process: AgentProcess;
  private closed = false;
  private pumpEnded = false;
  /** The permission mode the process started in: without a canUseTool (bypass) it can never ask later. */
  private readonly startMode: PermissionMode;
  lastActivityAt = monotonicNow();
  readonly ended: Promise<{ error?: Error }>;

  constructor(
    query: QueryFunction,
    private readonly settings: SdkAgentSettings,
    executable: string | undefined,
    request: AgentConnectionRequest,
    private readonly log: FastifyBaseLogger,
  ) {
    this.reducer = new MessageReducer(request.onEvent);
    const home = chatAgentHome(settings.agentHomeDir, request.chatId);
    ensureChatAgentHome(home);
    const confinement = settings.confinement;
    this.process = new AgentProcess(
      log,
      confinement
        ? (command, args, env) => confinement.wrap(command, args, { workspace: request.cwd, home, configDir: env.CLAUDE_CONFIG_DIR })
        : undefined,
      settings.priority,
    );
    const sessionStore = settings.sessionStore?.(request.chatId);
    const chat = request.settings ?? {};
    this.startMode = chat.permissionMode ?? settings.permissionMode ?? 'default';
    // Confined, the chat's own temp folder is the agent's /tmp; unconfined, all share one (agent-home.ts says why).
    const tmpDir = confinement ? '/tmp' : sharedTmpDir(settings.agentHomeDir);
    if (!confinement) fs.mkdirSync(tmpDir, { recursive: true });
    this.query = query({
      prompt: this.input,
      options: {
        cwd: request.cwd,
        ...(executable ? { pathToClaudeCodeExecutable: executable } : {}),
        env: chatAgentEnv(settings.env, home, tmpDir),
        // Rendered fresh for every request (snapshot: false): by default the CLI records a session's first system
        // prompt and sends that record on resume, so a chat's changed system_prompt_append would never apply.
        systemPrompt: {
          type: 'custom',
          prompt: chat.systemPromptAppend ? `${settings.systemPrompt}\n\n${chat.systemPromptAppend}` : settings.systemPrompt,
          snapshot: false,
        },
        maxTurns: settings.maxTurns,
        // The chat's own list is a subset of the service's (checked when it was set).
        allowedTools: chat.allowedTools ?? settings.allowedTools,
        permissionMode: this.startMode,
        // Whenever the service allows bypassing, so a chat that narrowed its mode can widen it back while running.
        allowDangerouslySkipPermissions: settings.permissionMode === 'bypassPermissions',
        ...((chat.model ?? settings.model) ? { model: chat.model ?? settings.model } : {}),
        ...(settings.mcpServers ? { mcpServers: settings.mcpServers } : {}),
        ...(request.resume ? { resume: request.resume } : {}),
        ...(request.resume && request.resumeAt ? { resumeSessionAt: request.resumeAt, forkSession: true } : {}),
        ...(request.maxBudgetUsd !== undefined ? { maxBudgetUsd: request.maxBudgetUsd } : {}),
        // Resuming with a store, the SDK loads the session into a temporary config dir and starts the CLI with it
        // (AgentProcess lets a confined CLI see that folder). Eager: each group of lines is stored as the CLI writes it
        // (about 3 appends a turn, never per delta) rather than all at the turn's end, so a node that dies mid-answer
        // leaves the question, and a fork's or retry's new session from its very start, for another node to resume.
        ...(sessionStore ? { sessionStore, sessionStoreFlush: 'eager' as const } : {}),
        ...(settings.sandbox ? { sandbox: { enabled: true, failIfUnavailable: true, allowUnsandboxedCommands: false } } : {}),
        // Isolation: no user/project settings or hooks from disk; the service's config is the whole config.
        settingSources: [],
        includePartialMessages: true,
        spawnClaudeCodeProcess: this.process.spawn,
        // Path rules of the file tools (workspace-guard.ts): a clear refusal for paths outside the workspace.
        hooks: {
          PreToolUse: [
            {
              matcher: GUARDED_TOOLS.join('|'),
              hooks: [
                async (input) => {
                  if (input.hook_event_name !== 'PreToolUse') return {};
                  const why = await outsideWorkspace(input.tool_name, (input.tool_input ?? {}) as Record<string, unknown>, request.cwd);
                  if (!why) return {};
                  return {
                    hookSpecificOutput: { hookEventName: 'PreToolUse', permissionDecision: 'deny', permissionDecisionReason: why },
                  };
                },
              ],
            },
          ],
        },
        // Only where the mode can ask: under bypassPermissions the CLI never calls it (and warns that it is shadowed).
        ...(this.startMode === 'bypassPermissions'
          ? {}
          : {
              canUseTool: (toolName, input, options) =>
                request.canUseTool(toolName, input, {
                  signal: options.signal,
                  toolUseId: options.toolUseID,
                  suggestions: suggestedAllowRules(options.suggestions),
                  suppressRule: options.suppressAlwaysAllowRule === true,
                }),
            }),
      },
    });
    // Ended means the message loop is over AND the CLI process has exited (its temporary resume dir, if any, removed):
    // no orphan, and no copy of the chat's transcript, outlives a connection.
    this.ended = Promise.race([this.pump(), this.exitUnnoticed()]).then(async (outcome) => {
      await this.process.terminate();
      await removeResumeDir(this.process.configDir);
      // The transcript lines the CLI wrote as it exited are stored before the connection counts as ended.
      await sessionStore?.settled?.();
      return outcome;
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  /**
   * The SDK does not always end its message loop when the CLI dies right at its start (seen with a CLI that exits 1
   * at once; claude-agent-sdk-typescript#255): the query would then wait forever for an agent that is gone. So the
   * process's own exit ends the connection too, once the SDK had time to drain the CLI's last output and end the
   * loop itself.
   */
  private async exitUnnoticed(): Promise<{ error?: Error }> {
    await this.process.exited;
    if (this.pumpEnded || this.closed) return {};
    await new Promise((resolve) => setTimeout(resolve, LOOP_END_AFTER_EXIT_MS));
    if (this.pumpEnded || this.closed) return {};
    const error = this.spawnFailure() ?? new Error(`the agent CLI ${this.process.exitStatus ?? 'exited'}`);
    this.log.warn({ err: error }, 'the agent CLI is gone and the SDK did not end its message loop: the connection ends');
    this.close();
    return { error };
  }

  /**
   * Why the CLI could not be started at all, if so: the SDK words that as a guess (e.g. "does not match this
   * system's libc"), the OS error says why.
   */
  private spawnFailure(): Error | undefined {
    const spawnError = this.process.spawnError;
    return spawnError && new Error(`cannot run the agent CLI: ${spawnError.message}`);
  }

  private async pump(): Promise<{ error?: Error }> {
    try {
      for await (const message of this.query) {
        this.lastActivityAt = monotonicNow();
        if (message.type === 'system' && message.subtype === 'mirror_error') {
          // The SDK gave up storing a batch of transcript lines (after its retries): a resume elsewhere lacks them.
          this.log.error(
            { sdk_session_id: message.session_id, subpath: message.key.subpath, error: message.error },
            'agent transcript lines not stored',
          );
        }
        try {
          this.reducer.reduce(message);
        } catch (err) {
          // A handler bug must not kill the chat's message loop.
          this.log.error({ err, sdk_message_type: message.type }, 'failed to handle an agent message');
        }
      }
      return {};
    } catch (err) {
      if (this.closed) return {};
      const spawnFailure = this.spawnFailure();
      if (spawnFailure) return { error: spawnFailure };
      this.log.warn({ err }, 'agent connection ended with an error');
      return { error: err instanceof Error ? err : new Error(String(err)) };
    } finally {
      this.pumpEnded = true;
    }
  }

  send(text: string, images: AgentImage[]): void {
    this.input.push({
      type: 'user',
      parent_tool_use_id: null,
      message: {
        role: 'user',
        content: [
          ...images.map((img) => ({
            type: 'image' as const,
            source: { type: 'base64' as const, media_type: img.mediaType as 'image/png', data: img.base64 },
          })),
          ...(text.length > 0 ? [{ type: 'text' as const, text }] : []),
        ],
      },
    });
  }

  async setModel(model: string | undefined): Promise<void> {
    if (this.closed) return;
    await this.query.setModel(model ?? this.settings.model);
  }

  async setPermissionMode(mode: PermissionMode | undefined): Promise<boolean> {
    if (this.closed) return false;
    const target = mode ?? this.settings.permissionMode ?? 'default';
    // Started in bypassPermissions, the process has no canUseTool: a mode that asks needs a new process.
    if (this.startMode === 'bypassPermissions' && target !== 'bypassPermissions') return false;
    await this.query.setPermissionMode(target);
    return true;
  }

  async interrupt(): Promise<void> {
    if (this.closed) return;
    await this.query.interrupt();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.input.end();
    this.query.close();
    void this.process.terminate();
  }
}

/**
 * The `allow` rules among the SDK's suggestions for remembering an approval. Its other suggestions (add a
 * directory, switch the session to acceptEdits) would allow far more than the call the user approved: never taken.
 */
function suggestedAllowRules(suggestions: PermissionUpdate[] | undefined): SuggestedRule[] {
  return (suggestions ?? []).flatMap((update) =>
    update.type === 'addRules' && update.behavior === 'allow'
      ? update.rules.map((rule) => ({ toolName: rule.toolName, ...(rule.ruleContent !== undefined ? { ruleContent: rule.ruleContent } : {}) }))
      : [],
  );
}

type ContentBlock = { type: string; [key: string]: unknown };

const toolResultText = (content: unknown): string => {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((block: ContentBlock) => (block.type === 'text' ? String(block.text ?? '') : `[${block.type}]`))
      .join('\n');
  }
  return content === undefined || content === null ? '' : JSON.stringify(content);
};

/**
 * Turns SDK messages into AgentEvents. Only the main conversation (parent_tool_use_id === null) is reported;
 * sub-agent traffic stays inside its Task tool call. Unknown message types are ignored: the CLI adds new ones.
 */
class MessageReducer {
  /** API messages whose text we streamed, so their complete copy is not reported twice. */
  private readonly streamedMessageIds = new Set<string>();
  /** Content block indexes of the current streamed API message that are text. */
  private readonly openTextBlocks = new Set<number>();
  /** The uuid of the turn's latest main-conversation entry (assistant message or tool result) so far. */
  private tailUuid: string | null = null;

  constructor(private readonly emit: (event: AgentEvent) => void) {}

  reduce(message: SDKMessage): void {
    switch (message.type) {
      case 'system':
        if (message.subtype === 'init') this.emit({ kind: 'init', sessionId: message.session_id });
        else if (message.subtype === 'api_retry') {
          this.emit({
            kind: 'api_retry',
            attempt: message.attempt,
            maxRetries: message.max_retries,
            status: message.error_status,
            delayMs: message.retry_delay_ms,
          });
        }
        return;
      case 'stream_event':
        if (message.parent_tool_use_id === null) this.reduceStreamEvent(message.event as unknown as StreamEvent);
        return;
      case 'assistant':
        if (message.parent_tool_use_id === null) {
          this.tailUuid = message.uuid;
          this.reduceAssistant(message);
        }
        return;
      case 'user':
        if (message.parent_tool_use_id === null) {
          if (message.uuid) this.tailUuid = message.uuid;
          this.reduceUser(message.message.content as unknown);
        }
        return;
      case 'result': {
        const tailUuid = this.tailUuid;
        this.tailUuid = null;
        this.streamedMessageIds.clear();
        this.openTextBlocks.clear();
        this.emit({
          kind: 'turn_end',
          sessionId: message.session_id,
          usage: {
            inputTokens: message.usage?.input_tokens ?? 0,
            outputTokens: message.usage?.output_tokens ?? 0,
            cacheReadInputTokens: message.usage?.cache_read_input_tokens ?? 0,
            cacheCreationInputTokens: message.usage?.cache_creation_input_tokens ?? 0,
            model: Object.keys(message.modelUsage ?? {})[0] ?? null,
          },
          success: message.subtype === 'success' && !message.is_error,
          subtype: message.subtype,
          totalCostUsd: message.total_cost_usd ?? 0,
          durationMs: message.duration_ms ?? 0,
          errors: 'errors' in message && Array.isArray(message.errors) ? message.errors : [],
          terminalReason: (message as { terminal_reason?: string }).terminal_reason ?? null,
          tailUuid,
        });
        return;
      }
      default:
        return;
    }
  }

  private reduceStreamEvent(event: StreamEvent): void {
    switch (event.type) {
      case 'message_start':
        this.openTextBlocks.clear();
        if (event.message?.id) this.streamedMessageIds.add(event.message.id);
        return;
      case 'content_block_start':
        if (event.content_block?.type === 'text') {
          this.openTextBlocks.add(event.index);
          this.emit({ kind: 'text_start' });
        }
        return;
      case 'content_block_delta':
        if (event.delta?.type === 'text_delta' && this.openTextBlocks.has(event.index) && event.delta.text) {
          this.emit({ kind: 'text_delta', text: event.delta.text });
        }
        return;
      case 'content_block_stop':
        if (this.openTextBlocks.delete(event.index)) this.emit({ kind: 'text_end' });
        return;
      default:
        return;
    }
  }

  private reduceAssistant(message: Extract<SDKMessage, { type: 'assistant' }>): void {
    const blocks = (message.message.content ?? []) as unknown as ContentBlock[];
    if (message.error) {
      const text = blocks.map((b) => (b.type === 'text' ? String(b.text) : '')).join('').trim();
      this.emit({ kind: 'api_error', code: message.error, message: text || `model API error: ${message.error}` });
      return;
    }
    const streamed = this.streamedMessageIds.has(message.message.id);
    for (const block of blocks) {
      if (block.type === 'text' && !streamed && typeof block.text === 'string' && block.text.length > 0) {
        this.emit({ kind: 'text_whole', text: block.text });
      } else if (block.type === 'tool_use') {
        this.emit({
          kind: 'tool_use',
          toolUseId: String(block.id),
          toolName: String(block.name),
          input: (block.input ?? {}) as Record<string, unknown>,
        });
      }
    }
  }

  private reduceUser(content: unknown): void {
    if (!Array.isArray(content)) return;
    for (const block of content as ContentBlock[]) {
      if (block.type !== 'tool_result') continue;
      this.emit({
        kind: 'tool_result',
        toolUseId: String(block.tool_use_id),
        content: toolResultText(block.content),
        isError: block.is_error === true,
      });
    }
  }
}

/** The raw API stream events we read (a subset of the SDK's BetaRawMessageStreamEvent). */
type StreamEvent =
  | { type: 'message_start'; message?: { id?: string } }
  | { type: 'content_block_start'; index: number; content_block?: { type: string } }
  | { type: 'content_block_delta'; index: number; delta?: { type: string; text?: string } }
  | { type: 'content_block_stop'; index: number }
  | { type: 'message_delta' | 'message_stop' | 'ping' };
