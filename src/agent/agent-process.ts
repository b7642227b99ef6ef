import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import type { SpawnedProcess, SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import type { FastifyBaseLogger } from 'fastify';
import type { AgentPriority } from './agent-priority.js';
import { underWatchdog } from './orphan-watchdog.js';
import { findProcessesWithEnv, killAll } from './process-scan.js';

/** Environment entry tagging one agent process and everything it starts (see process-scan.ts). */
const TAG_VARIABLE = 'AGENT_PROCESS_TAG';

/** After stdin closes the CLI normally exits within this; then its whole process group is killed. */
export const AGENT_EXIT_GRACE_MS = 1_500;

/**
 * Starts the agent CLI for the SDK (its `spawnClaudeCodeProcess` hook) so that it and every tool process it started
 * (a Bash command, a server it launched) can be ended together: the CLI gets a process group of its own and an
 * environment tag that its tools inherit (the CLI puts tools in process groups of their own, so the group alone
 * would miss them). A Ctrl-C in the operator's terminal reaches only the service, which shuts agents down in order.
 *
 * With `confine`, the CLI is started through it (a bubblewrap command line, see confinement.ts). bwrap then is the
 * process the service holds, and bwrap ends the whole namespace when it dies: so the polite SIGTERM, which lets the
 * CLI finish its writes, goes to the CLI itself (found by its tag), and only the final SIGKILL goes to the group.
 */
export type Confine = (
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
) => { command: string; args: string[]; mountPoints: string[] };

export class AgentProcess {
  private child: ChildProcess | undefined;
  private readonly tag = randomUUID();
  private exitedResolve!: () => void;
  /** Resolves when the CLI process has exited (immediately if it never started). */
  readonly exited = new Promise<void>((resolve) => {
    this.exitedResolve = resolve;
  });

  private startError: Error | undefined;
  /** How the process ended ("exited with code 1", "was killed by SIGKILL"), once it has. */
  exitStatus: string | undefined;
  /** The start of the process's stderr: where bwrap says why it could not run the CLI. */
  private stderrHead = '';

  /** Why the CLI could not be started at all (no such file, no permission), if so. */
  get spawnError(): Error | undefined {
    if (this.startError || !this.confine) return this.startError;
    // Confined, a CLI that cannot be run is reported by bwrap (which did start), as `bwrap: <reason>`.
    const refusal = /^bwrap: .+$/m.exec(this.stderrHead)?.[0];
    return refusal ? new Error(refusal) : undefined;
  }

  constructor(
    private readonly log: FastifyBaseLogger,
    private readonly confine?: Confine,
    /** AGENT_NICE: the CLI and its tools run at a lower CPU priority than the service (agent-priority.ts). */
    private readonly priority?: AgentPriority,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  spawn = (options: SpawnOptions): SpawnedProcess => {
    // Confined, bubblewrap ends the agent when the service dies; unconfined, a watchdog does (orphan-watchdog.ts).
    // A CLI that cannot be run at all is spawned as it is: the spawn then fails with the reason (ENOENT, EACCES),
    // which the start backoff reports, where the watchdog's shell would only exit 127 or 126.
    const canRun = runnable(options.command);
    const watched = !this.confine && canRun;
    const started = this.confine
      ? this.confine(options.command, options.args, options.env)
      : watched
        ? { ...underWatchdog(this.tag, options.command, options.args), mountPoints: [] }
        : { command: options.command, args: options.args, mountPoints: [] };
    // Through `nice` only a CLI that can run: one that cannot must fail the spawn itself, with its reason.
    const priority = canRun ? this.priority : undefined;
    const { command, args } = priority ? priority.command(started.command, started.args) : started;
    this.mountPoints = started.mountPoints;
    this.startedConfigDir = options.env.CLAUDE_CONFIG_DIR;
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...options.env, [TAG_VARIABLE]: this.tag },
      // fd 3: the watchdog's pipe to this process, never written; its end of file tells the watchdog we are gone.
      stdio: watched ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    // Detached, the CLI leads a session of its own: its autogroup gets the same lower priority.
    if (priority && child.pid !== undefined) priority.session(child.pid);
    // The watchdog's pipe must not keep the service's event loop alive.
    (child.stdio[3] as { unref?: () => void } | null | undefined)?.unref?.();
    child.once('exit', (code, signal) => {
      this.exitStatus = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.exitedResolve();
    });
    child.once('error', (err) => {
      this.startError = err;
      this.log.error({ err }, 'agent CLI failed to start');
      this.exitedResolve();
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (this.stderrHead.length < 2_000) this.stderrHead += chunk.slice(0, 2_000);
      this.log.debug({ stderr: chunk.trimEnd() }, 'agent CLI stderr');
    });
    // The SDK aborts this signal only after its own graceful close; the group kill then ends stragglers too.
    options.signal?.addEventListener('abort', () => void this.askToExit(), { once: true });
    return child as unknown as SpawnedProcess;
  };

  /** Ends the CLI and its tools: SIGKILL to the whole process group if it has not exited after `graceMs`. */
  async terminate(graceMs = AGENT_EXIT_GRACE_MS): Promise<void> {
    if (!this.child) return;
    this.terminating ??= (async () => {
      // The CLI does not exit promptly on stdin EOF alone; SIGTERM lets it finish its writes and exit at once.
      await this.askToExit();
      const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
      timer.unref();
      await this.exited;
      clearTimeout(timer);
      // Tools the CLI started outlive it (their own process groups, or a backgrounded command): end them too.
      this.killGroup('SIGKILL');
      killAll(await findProcessesWithEnv(`${TAG_VARIABLE}=${this.tag}`));
      // rmdir removes only an empty folder: a mount point the namespace no longer uses.
      for (const dir of this.mountPoints) await fs.rmdir(dir).catch(() => undefined);
    })();
    await this.terminating;
  }

  private terminating: Promise<void> | undefined;
  /** Folders bwrap made on the host as mount points for this process (Confine). */
  private mountPoints: string[] = [];
  private startedConfigDir: string | undefined;

  /** The CLAUDE_CONFIG_DIR the CLI was started with: the SDK's temporary one when it resumed from a session store. */
  get configDir(): string | undefined {
    return this.startedConfigDir;
  }

  /** SIGTERM to the CLI and its tools: the process group, or inside a confinement the tagged processes. */
  private async askToExit(): Promise<void> {
    if (!this.confine) return this.killGroup('SIGTERM');
    killAll(await findProcessesWithEnv(`${TAG_VARIABLE}=${this.tag}`), 'SIGTERM');
  }

  private killGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is already gone.
    }
  }
}

/** Whether `command` can be executed: a path must name an executable file; a bare name is left to the PATH search. */
function runnable(command: string): boolean {
  if (!command.includes('/')) return true;
  try {
    accessSync(command, fsConstants.X_OK);
    return statSync(command).isFile();
  } catch {
    return false;
  }
}
