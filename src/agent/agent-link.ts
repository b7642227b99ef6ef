import fs from 'node:fs/promises';
import type { PermissionMode } from '../protocol/chat.js';
import type { AgentConnection, AgentConnectionRequest, AgentImage, ChatAgentSettings } from './agent-events.js';

export interface AgentLinkDeps {
  /** The chat's own working directory (created on first use). */
  cwd: string;
  /**
   * The SDK session the chat's model context lives in, if any, and the entry to continue it from when only part of
   * it is the chat's context (after a fork or a retry; cleared once a process reported its new session).
   */
  resumePoint(): Promise<{ sessionId?: string; at?: string }>;
  /** The chat's own agent settings, read at each start. */
  chatSettings(): Promise<ChatAgentSettings>;
  /** Whether the SDK still has that session's transcript, so resuming it keeps the model's context. */
  transcriptExists(sessionId: string): Promise<boolean>;
  /** Starts a process through `start` within the live-agent limit (see AgentRegistry.admit). */
  admit(start: () => Promise<AgentConnection>, options: { evict: boolean }): Promise<AgentConnection | undefined>;
  /** Makes the connection; only events of the current process are passed on. */
  connect(
    request: Pick<AgentConnectionRequest, 'resume' | 'resumeAt' | 'settings' | 'onEvent' | 'canUseTool' | 'maxBudgetUsd'>,
  ): Promise<AgentConnection>;
  /** What a new process may spend in all (the SDK's maxBudgetUsd), if a budget applies. */
  budgetUsd?(): Promise<number | undefined>;
  /** The stored session cannot be resumed: the next process starts a new one. */
  sessionLost(sessionId: string, why: string): void;
  /** A process of this chat reported its first `init`: the agent CLI starts fine. */
  started(): void;
  /** A process of this chat ended before it ever reported `init`: the agent CLI failed to start. */
  startFailed(reason: string): void;
}

type Handlers = Pick<AgentConnectionRequest, 'onEvent' | 'canUseTool'> & {
  /**
   * The current process ended by itself (not through `drop`). `resumedFrom` is set if it ran resuming a session;
   * `atStart` if it ended before it ever reported `init` (it never started a turn).
   */
  onEnded(error: Error | undefined, resumedFrom: string | undefined, atStart: boolean): void;
};

/**
 * A chat's link to its agent process: starts it on demand within the live-agent limit, resuming the chat's SDK
 * session (or a new one if its transcript is gone), replaces it, and lets through only the events and questions of
 * the current process: those of a process already replaced never reach the chat.
 */
export class AgentLink {
  private connection: AgentConnection | undefined;
  /** Increments whenever the process is replaced. */
  private generation = 0;
  /** The SDK's cost total is cumulative per process: a turn's cost is the difference. */
  private costBase = 0;
  /** Turns the current process has finished (its spend counts against its maxBudgetUsd). */
  turnsServed = 0;
  /**
   * The current process runs with settings the chat no longer has (ones only a start applies): it is replaced
   * before the chat's next message.
   */
  outdated = false;

  constructor(
    private readonly deps: AgentLinkDeps,
    private readonly handlers: Handlers,
  ) {}

  get live(): boolean {
    return this.connection !== undefined;
  }

  get pid(): number | undefined {
    return this.connection?.pid;
  }

  /** When the current process last reported anything (0 without one). */
  get lastActivityAt(): number {
    return this.connection?.lastActivityAt ?? 0;
  }

  /** The running process, started if there is none (undefined when the limit refused it and `evict` is false). */
  async ensure({ evict }: { evict: boolean }): Promise<AgentConnection | undefined> {
    if (this.connection) return this.connection;
    await fs.mkdir(this.deps.cwd, { recursive: true });
    const point = await this.deps.resumePoint();
    let resume = point.sessionId;
    if (resume && !(await this.deps.transcriptExists(resume))) {
      this.deps.sessionLost(resume, 'its transcript is gone');
      resume = undefined;
    }
    const resumeAt = resume ? point.at : undefined;
    const maxBudgetUsd = await this.deps.budgetUsd?.();
    const settings = await this.deps.chatSettings();
    const generation = this.generation + 1;
    const current = () => generation === this.generation;
    let initialized = false;
    const connection = await this.deps.admit(
      () =>
        this.deps.connect({
          ...(resume ? { resume } : {}),
          ...(resumeAt ? { resumeAt } : {}),
          settings,
          ...(maxBudgetUsd !== undefined ? { maxBudgetUsd } : {}),
          onEvent: (event) => {
            if (!current()) return;
            if (event.kind === 'init' && !initialized) {
              initialized = true;
              this.deps.started();
            }
            this.handlers.onEvent(event);
          },
          canUseTool: (toolName, input, options) =>
            current()
              ? this.handlers.canUseTool(toolName, input, options)
              : Promise.resolve({ behavior: 'deny' as const, message: 'The request was cancelled.' }),
        }),
      { evict },
    );
    if (!connection) return undefined;
    this.generation = generation;
    this.costBase = 0;
    this.turnsServed = 0;
    this.outdated = false;
    this.connection = connection;
    void connection.ended.then(({ error }) => {
      if (!current()) return;
      this.connection = undefined;
      if (!initialized) this.deps.startFailed(error?.message ?? 'the agent process exited before it started');
      // A CLI that could not even be spawned (no pid: bad path, no permission) says nothing about the transcript.
      const ranResuming = connection.pid !== undefined ? resume : undefined;
      this.handlers.onEnded(error, ranResuming, !initialized);
    });
    return connection;
  }

  async send(text: string, images: AgentImage[]): Promise<boolean> {
    const connection = await this.ensure({ evict: true });
    connection?.send(text, images);
    return connection !== undefined;
  }

  /** The model of the running process, if there is one (a start reads the chat's settings anyway). */
  async setModel(model: string | undefined): Promise<void> {
    await this.connection?.setModel(model);
  }

  /** The permission mode of the running process; one it cannot switch to marks it outdated. */
  async setPermissionMode(mode: PermissionMode | undefined): Promise<void> {
    if (this.connection && !(await this.connection.setPermissionMode(mode))) this.outdated = true;
  }

  interrupt(): Promise<void> {
    return this.connection ? this.connection.interrupt() : Promise.resolve();
  }

  /** Ends the process and waits until it has exited; the next `ensure` starts a new one (resuming the session). */
  async drop(): Promise<void> {
    const connection = this.connection;
    if (!connection) return;
    this.generation++;
    this.connection = undefined;
    connection.close();
    await connection.ended;
  }

  /** This turn's cost, from the cumulative total the SDK reports at a turn's end. */
  turnCost(totalCostUsd: number): number {
    const cost = Math.max(0, totalCostUsd - this.costBase);
    this.costBase = totalCostUsd;
    this.turnsServed++;
    return cost;
  }
}
