import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { BareAnswer, BareRequest, BareTurn } from './bare-protocol.js';
import { REPO_ROOT, stopTree, track, TSX_IMPORT } from './children.js';
import { agentProcesses } from './proc.js';
import { waitUntil, withTimeout } from './util.js';

/** The benchmark's handle on bench/bare-worker.ts: N bare SDK sessions in one Node process. */
export class BareWorker {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited: string | undefined;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (answer: BareAnswer) => {
      const w = this.waiting.get(answer.id);
      if (!w) return;
      this.waiting.delete(answer.id);
      if (answer.ok) w.resolve(answer.value);
      else w.reject(new Error(answer.error));
    });
    child.once('exit', (code, signal) => {
      this.exited = `bare worker exited (code ${code}, signal ${signal})`;
      for (const w of this.waiting.values()) w.reject(new Error(this.exited));
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** `agentNice`: the service's AGENT_NICE when the benchmark sets it (the agents' priority is the same on every side). */
  static async start(fakeUrl: string, dataDir: string, agentNice?: string): Promise<BareWorker> {
    const child = track(
      fork(path.join(REPO_ROOT, 'bench/bare-worker.ts'), [], {
        cwd: REPO_ROOT,
        execArgv: ['--import', TSX_IMPORT],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}) },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      }),
    );
    const worker = new BareWorker(child);
    await worker.call({ op: 'init', fakeUrl, dataDir, ...(agentNice !== undefined ? { agentNice } : {}) }, 30_000);
    return worker;
  }

  private call<T>(req: BareRequest, timeoutMs: number): Promise<T> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = this.nextId++;
    const answer = new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    this.child.send({ id, ...req });
    return withTimeout(answer, timeoutMs, `bare worker "${req.op}"`).finally(() => this.waiting.delete(id));
  }

  clockOffsetMs(): Promise<number> {
    return this.call({ op: 'clock' }, 10_000);
  }

  turn(sid: string, text: string, open: boolean, timeoutMs: number): Promise<BareTurn> {
    // The worker enforces timeoutMs itself (and reports it); this outer one only guards against a dead worker.
    return this.call({ op: 'turn', sid, text, open, timeoutMs }, timeoutMs + 5_000);
  }

  /** Starts a session's CLI without a message and resolves once it is initialized. */
  open(sid: string, timeoutMs: number): Promise<void> {
    return this.call({ op: 'open', sid }, timeoutMs);
  }

  close(sid: string): Promise<void> {
    return this.call({ op: 'close', sid }, 10_000);
  }

  /** Closes every session and waits until all CLI processes have exited, so the next phase starts clean. */
  async closeAll(timeoutMs = 30_000): Promise<void> {
    await this.call({ op: 'closeAll' }, 10_000);
    try {
      await waitUntil(() => (agentProcesses(this.pid).agents.length === 0 ? true : undefined), {
        timeoutMs,
        intervalMs: 50,
        what: 'the bare SDK CLI processes to exit after close()',
      });
    } catch (err) {
      const left = agentProcesses(this.pid).agents.map((p) => `${p.pid} ${p.comm} (parent ${p.ppid})`);
      throw new Error(`${(err as Error).message}; still running: ${left.join(', ')}`);
    }
  }

  /** Closes the sessions, then ends the worker; whatever is still alive after the grace time is killed. */
  async stop(): Promise<void> {
    let closeError: Error | undefined;
    await this.closeAll(15_000).catch((err: Error) => {
      closeError = err;
    });
    if (this.child.connected) this.child.disconnect();
    await stopTree(this.child, { graceMs: 5_000 });
    if (closeError) throw closeError;
  }
}
