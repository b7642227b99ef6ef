import fs from 'node:fs';
import path from 'node:path';

/**
 * Agents are throughput work, the service is latency work. When the agents saturate the cores (many chats
 * answering at once), an agent at the service's own priority takes the core from the service's event loop, and
 * every delta of every chat waits: for the loop, and for its garbage collections, which then stretch from a
 * millisecond to a hundred. AGENT_NICE starts each agent CLI (and so every tool it runs) at a lower CPU priority.
 * The agents keep every cycle the service does not use; only who goes first changes.
 *
 * Two mechanisms, because Linux has two levels:
 * - the process's nice value, set by starting the CLI through `nice -n N` (exec'd in place: the pid the service
 *   holds is the CLI's, or bwrap's, as before), so the CLI has it from its first instruction;
 * - its autogroup's. With `kernel.sched_autogroup_enabled` (the default of most distributions; irrelevant inside
 *   a systemd service or a container, whose cgroup replaces it) the CPU is first shared between sessions, then
 *   between the processes of each. Each agent is started in a session of its own (setsid, so a terminal's Ctrl-C
 *   reaches only the service), so its nice value alone would change nothing; its session's autogroup gets the
 *   same value (/proc/PID/autogroup, which a process may lower for its own children).
 */
export interface AgentPriority {
  /** The command line that runs `command args` at the lower priority. */
  command(command: string, args: string[]): { command: string; args: string[] };
  /** Lowers the priority of the session the agent `pid` leads (started detached); a no-op where there is none. */
  session(pid: number): void;
}

/** `nice`'s absolute path, looked up once: the agent's environment may not have the service's PATH. */
function findNice(searchPath: string | undefined): string | undefined {
  for (const dir of (searchPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'nice');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The priority of agents at nice `nice` (0: the service's own, nothing changes). Undefined where it cannot be
 * done (no `nice` on the PATH, or not a POSIX system): the caller says so once and runs agents as they are.
 */
export function agentPriority(nice: number, searchPath = process.env.PATH): AgentPriority | undefined {
  if (nice === 0 || process.platform === 'win32') return undefined;
  const niceBin = findNice(searchPath);
  if (!niceBin) return undefined;
  return {
    command: (command, args) => ({ command: niceBin, args: ['-n', String(nice), command, ...args] }),
    session: (pid) => {
      if (process.platform !== 'linux') return;
      try {
        fs.writeFileSync(`/proc/${pid}/autogroup`, String(nice));
      } catch {
        // No autogroups in this kernel, or the process is already gone: its nice value is all there is.
      }
    },
  };
}
