import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

/**
 * CPU and memory of a process tree, read from /proc (Linux only). The service and the bare-SDK worker each run as
 * a child of the benchmark so that their own Node process (the "root") and their agent CLIs (its descendants) can
 * be told apart: the agents are the same program in both, the root is what differs.
 */

const getconf = (name: string, fallback: number): number => {
  try {
    return Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim()) || fallback;
  } catch {
    return fallback;
  }
};
/** utime/stime in /proc/<pid>/stat are in clock ticks; rss in pages. */
export const CLK_TCK = getconf('CLK_TCK', 100);
export const PAGE_SIZE = getconf('PAGESIZE', 4096);

export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, clock ticks. */
  cpuTicks: number;
  rssBytes: number;
}

export function readProc(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
  // The command name is in parentheses and may itself contain spaces or ')': split after the LAST ')'.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const f = stat.slice(close + 2).split(' ');
  // f[0] is field 3 (state): field k of proc(5) is f[k - 3].
  return {
    pid,
    ppid: Number(f[1]),
    comm,
    cpuTicks: Number(f[11]) + Number(f[12]),
    rssBytes: Number(f[21]) * PAGE_SIZE,
  };
}

export function listProcs(): Map<number, ProcInfo> {
  const out = new Map<number, ProcInfo>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProc(Number(name));
    if (info) out.set(info.pid, info);
  }
  return out;
}

/** Every live descendant of `root` (children, grandchildren, ...), not `root` itself. */
export function descendants(root: number, procs = listProcs()): ProcInfo[] {
  const children = new Map<number, ProcInfo[]>();
  for (const p of procs.values()) {
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  const out: ProcInfo[] = [];
  const stack = [root];
  while (stack.length > 0) {
    for (const child of children.get(stack.pop() as number) ?? []) {
      out.push(child);
      stack.push(child.pid);
    }
  }
  return out;
}

/** CPU ticks the whole machine spent busy (all cores, everything but idle and iowait), from /proc/stat. */
export function machineBusyTicks(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
}

/**
 * ns the main thread of `pid` has spent waiting in the CPU run queue (runnable, but no core free), from
 * /proc/<pid>/schedstat; a Node event loop lives on the main thread. 0 if unavailable.
 */
export function runQueueWaitNs(pid: number): number {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) || 0;
  } catch {
    return 0;
  }
}

/**
 * CPU time of `pid` so far, ns, from /proc/<pid>/task/<tid>/schedstat: every thread, and its main thread (the event
 * loop) alone. A thread that ends between the listing and its read drops out.
 */
export function processCpuNs(pid: number): { all: number; main: number } {
  let all = 0;
  let main = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      all += ns;
      if (Number(tid) === pid) main = ns;
    } catch {
      // the thread ended meanwhile
    }
  }
  return { all, main };
}

/** Machine CPU (% of all cores) below which it counts as quiet: the run waits for it, the report flags it. */
export const QUIET_MACHINE_PCT = 15;

/** How busy the whole machine is over `ms`, in % of ALL cores (100 = every core fully busy). */
export async function machineBusyPct(ms: number): Promise<number> {
  const before = machineBusyTicks();
  const t = performance.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const cores = os.cpus().length;
  return ((machineBusyTicks() - before) / CLK_TCK / ((performance.now() - t) / 1000) / cores) * 100;
}

/** The agent CLI's process name (comm, at most 15 characters): the SDK runs its native `claude` binary. */
const AGENT_COMM = 'claude';

/**
 * The agent CLIs under `root` and whatever they started (tools), as opposed to the root's own helpers: under tsx a
 * Node process may run an `esbuild` child to transpile TypeScript, which is not an agent and must not be counted
 * as one (nor be waited for when agents are closed).
 */
export function agentProcesses(root: number, procs = listProcs()): { agents: ProcInfo[]; helpers: ProcInfo[] } {
  const all = descendants(root, procs);
  const agentPids = new Set<number>();
  for (const p of all) if (p.comm === AGENT_COMM) for (const d of [p, ...descendants(p.pid, procs)]) agentPids.add(d.pid);
  return { agents: all.filter((p) => agentPids.has(p.pid)), helpers: all.filter((p) => !agentPids.has(p.pid)) };
}

export interface TreeUsage {
  /** Wall seconds between the first and the last sample. */
  wallS: number;
  /**
   * CPU seconds the whole machine spent in the window, every process included (the benchmark's own clients, the
   * fake model, anything else running): with N cores, N × wallS is the ceiling.
   */
  machineCpuS: number;
  /** CPU seconds (user + system) of the root process during the window. */
  rootCpuS: number;
  /** CPU seconds of the agent CLIs (and anything they ran) during the window. */
  childrenCpuS: number;
  /** Highest RSS of the root seen, bytes. */
  rootPeakRss: number;
  /** Highest SUM of the agent CLIs' RSS seen in one sample, bytes. */
  childrenPeakRss: number;
  /** Most agent processes alive in one sample. */
  maxChildren: number;
  /**
   * Seconds the root's main thread (its event loop) and the benchmark's own (the WebSocket clients') were ready to
   * run but waited for a free core. On a saturated machine this waiting, not work, is what delays deltas.
   */
  rootRunQueueWaitS: number;
  benchRunQueueWaitS: number;
  /** The root's other children (tsx's esbuild), kept out of both figures above: CPU seconds and peak RSS. */
  helpersCpuS: number;
  helpersPeakRss: number;
  samples: number;
}

/**
 * Samples a process tree every `intervalMs` (~200 ms) until stopped: the root, its agent CLIs, its helpers.
 * CPU is the difference of utime+stime between
 * the first and the last time each process was seen (a process born during the window counts from zero). RSS is
 * a peak over samples, so a spike shorter than the interval can be missed: these are sampled peaks.
 */
export class TreeSampler {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private readonly helperPids = new Set<number>();
  private helpersPeakRss = 0;
  private rootFirst = 0;
  private rootLast = 0;
  private rootPeakRss = 0;
  private childrenPeakRss = 0;
  private maxChildren = 0;
  private samples = 0;
  private readonly startedAt = performance.now();
  private endedAt = this.startedAt;
  private readonly machineFirst = machineBusyTicks();
  private readonly benchWaitFirst = runQueueWaitNs(process.pid);
  private rootWaitFirst = 0;
  private rootWaitLast = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly root: number,
    intervalMs = 200,
  ) {
    this.sample(true);
    this.timer = setInterval(() => this.sample(false), intervalMs);
  }

  private sample(isFirst: boolean): void {
    const procs = listProcs();
    const root = procs.get(this.root);
    if (!root) return;
    if (isFirst) {
      this.rootFirst = root.cpuTicks;
      this.rootWaitFirst = runQueueWaitNs(this.root);
    }
    this.rootLast = root.cpuTicks;
    this.rootWaitLast = runQueueWaitNs(this.root) || this.rootWaitLast;
    this.rootPeakRss = Math.max(this.rootPeakRss, root.rssBytes);
    const { agents, helpers } = agentProcesses(this.root, procs);
    let rss = 0;
    for (const k of agents) rss += k.rssBytes;
    this.childrenPeakRss = Math.max(this.childrenPeakRss, rss);
    this.maxChildren = Math.max(this.maxChildren, agents.length);
    rss = 0;
    for (const h of helpers) {
      rss += h.rssBytes;
      this.helperPids.add(h.pid);
    }
    this.helpersPeakRss = Math.max(this.helpersPeakRss, rss);
    for (const k of [...agents, ...helpers]) {
      if (!this.first.has(k.pid)) this.first.set(k.pid, isFirst ? k.cpuTicks : 0);
      this.last.set(k.pid, k.cpuTicks);
    }
    this.samples++;
    this.endedAt = performance.now();
  }

  stop(): TreeUsage {
    clearInterval(this.timer);
    this.sample(false);
    let childTicks = 0;
    let helperTicks = 0;
    for (const [pid, last] of this.last) {
      const ticks = last - (this.first.get(pid) ?? 0);
      if (this.helperPids.has(pid)) helperTicks += ticks;
      else childTicks += ticks;
    }
    return {
      wallS: (this.endedAt - this.startedAt) / 1000,
      machineCpuS: (machineBusyTicks() - this.machineFirst) / CLK_TCK,
      rootCpuS: (this.rootLast - this.rootFirst) / CLK_TCK,
      childrenCpuS: childTicks / CLK_TCK,
      rootPeakRss: this.rootPeakRss,
      childrenPeakRss: this.childrenPeakRss,
      maxChildren: this.maxChildren,
      rootRunQueueWaitS: (this.rootWaitLast - this.rootWaitFirst) / 1e9,
      benchRunQueueWaitS: (runQueueWaitNs(process.pid) - this.benchWaitFirst) / 1e9,
      helpersCpuS: helperTicks / CLK_TCK,
      helpersPeakRss: this.helpersPeakRss,
      samples: this.samples,
    };
  }
}

/** Usage over several windows: times and CPU add up, peaks take the maximum. */
export function addUsage(a: TreeUsage | undefined, b: TreeUsage): TreeUsage {
  if (!a) return b;
  return {
    wallS: a.wallS + b.wallS,
    machineCpuS: a.machineCpuS + b.machineCpuS,
    rootCpuS: a.rootCpuS + b.rootCpuS,
    childrenCpuS: a.childrenCpuS + b.childrenCpuS,
    rootPeakRss: Math.max(a.rootPeakRss, b.rootPeakRss),
    childrenPeakRss: Math.max(a.childrenPeakRss, b.childrenPeakRss),
    maxChildren: Math.max(a.maxChildren, b.maxChildren),
    rootRunQueueWaitS: a.rootRunQueueWaitS + b.rootRunQueueWaitS,
    benchRunQueueWaitS: a.benchRunQueueWaitS + b.benchRunQueueWaitS,
    helpersCpuS: a.helpersCpuS + b.helpersCpuS,
    helpersPeakRss: Math.max(a.helpersPeakRss, b.helpersPeakRss),
    samples: a.samples + b.samples,
  };
}

/** Sends `signal` to each pid, ignoring those already gone. */
export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already exited */
    }
  }
}

/** Alive and not a zombie (an exited child its parent has not reaped yet uses no CPU or memory). */
export const isAlive = (pid: number): boolean => readProc(pid) !== undefined && !isZombie(pid);

function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * Agent CLI processes started by THIS benchmark that are still alive: `claude-agent-sdk` in the command line and a
 * working directory under the benchmark's temp folder (every chat's and every bare session's cwd is there). Other
 * sessions' CLIs on the same machine are left alone and not counted.
 */
export function ourAgentProcesses(tempRoot: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (!cmdline.includes('claude-agent-sdk')) continue;
      const cwd = fs.readlinkSync(`/proc/${name}/cwd`);
      if (cwd.startsWith(tempRoot) && !isZombie(Number(name))) out.push(Number(name));
    } catch {
      /* gone or not readable */
    }
  }
  return out;
}

/** Every `claude-agent-sdk` process on the machine (what `pgrep -f claude-agent-sdk` lists), for the report. */
export function allAgentProcesses(): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('claude-agent-sdk') && !isZombie(Number(name))) {
        out.push(Number(name));
      }
    } catch {
      /* gone */
    }
  }
  return out;
}
