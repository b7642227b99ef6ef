import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';
import { StartupRefusedError } from '../auth/exposure.js';
import type { ChatAgentHome } from './agent-home.js';

const run = promisify(execFile);

/**
 * OS-level confinement of a chat's agent CLI (and so of every tool it runs, whatever the user allowed): a
 * bubblewrap (`bwrap`) mount namespace in which only these exist:
 * - the system's programs and libraries (/usr and the merged-/usr links), read-only;
 * - a short list of /etc entries programs need (name resolution, TLS roots, time zone, Debian's alternatives, the
 *   loader cache) and a generated minimal passwd/group — not shadow, not ssh keys, not the rest of the host's /etc;
 * - the CLI's own folder (its package in node_modules, not the project around it), read-only;
 * - the chat's workspace and the chat's own agent home (transcripts, temp, images), read-write, at their real
 *   paths (so transcripts, resume and the path rules see the same paths inside and outside);
 * - its own temp folder as /tmp, a fresh /proc of its own PID namespace and a minimal /dev.
 * Nothing else: no other chat's workspace or transcripts, no database, no service source or config, no /proc of
 * the service (its environment). All capabilities are dropped. The network namespace is shared: the CLI must reach
 * the model API (README "Security" says what that leaves open).
 */
export class BwrapSandbox {
  constructor(private readonly base: string[]) {}

  /**
   * The bwrap command line that runs `command args` confined to the chat's workspace and agent home, and to
   * `configDir` if the CLI was given one elsewhere: the agent SDK resumes a session kept in a session store from a
   * temporary config dir of its own (`<system temp>/claude-resume-*`, holding only that chat's transcript and
   * settings), which must keep its path inside. `mountPoints` are the empty folders bwrap leaves on the host for it
   * (under the chat's temp folder), for the caller to remove once the process has exited.
   */
  wrap(
    command: string,
    args: string[],
    chat: { workspace: string; home: ChatAgentHome; configDir?: string | undefined },
  ): { command: string; args: string[]; mountPoints: string[] } {
    const own = new Set<string>();
    // The CLI's own package folder (the SDK starts the native binary, or `node cli.js` for the JS build).
    for (const file of [command, args[0]]) {
      if (file && path.isAbsolute(file) && !isUnder(file, '/usr')) own.add(path.dirname(file));
    }
    const elsewhere = chat.configDir && path.isAbsolute(chat.configDir) && !isUnder(chat.configDir, chat.home.home);
    const configDir = elsewhere ? chat.configDir : undefined;
    // Under /tmp it is mounted inside the chat's temp folder (the namespace's /tmp), where bwrap makes its mount point.
    const mountPoints =
      configDir && isUnder(configDir, '/tmp') ? [path.join(chat.home.tmpDir, path.relative('/tmp', configDir))] : [];
    return {
      mountPoints,
      command: 'bwrap',
      args: [
        // Its own temp folder as /tmp (short paths for the CLI's sockets; kept on disk, not in memory). Mounted
        // first: anything else may lie under /tmp (the CLI, a workspace), and a later mount would hide it (bwrap then
        // makes those mount points as empty folders inside the chat's temp folder).
        '--bind', chat.home.tmpDir, '/tmp',
        ...this.base,
        ...[...own].flatMap((dir) => ['--ro-bind', dir, dir]),
        '--bind', chat.workspace, chat.workspace,
        '--bind', chat.home.home, chat.home.home,
        ...(configDir ? ['--bind', configDir, configDir] : []),
        '--chdir', chat.workspace,
        '--',
        command,
        ...args,
      ],
    };
  }
}

/** /etc entries a confined agent sees (read-only, each only if it exists on the host). */
const ETC_ENTRIES = [
  'alternatives', 'bash.bashrc', 'ca-certificates', 'ca-certificates.conf', 'crypto-policies', 'debian_version',
  'gai.conf', 'gitconfig', 'host.conf', 'hosts', 'inputrc', 'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d',
  'localtime', 'magic', 'mime.types', 'nsswitch.conf', 'os-release', 'pki', 'protocols', 'resolv.conf', 'services',
  'ssl', 'terminfo', 'timezone',
];

/** Root-level folders of programs and libraries; on merged-/usr systems (Debian 12) they are links into /usr. */
const SYSTEM_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/**
 * The arguments every confined agent shares. `sandboxDir` receives the generated passwd/group files; `extraReadOnly`
 * are operator-chosen host paths (AGENT_READONLY_PATHS).
 */
export function bwrapBaseArgs(sandboxDir: string, extraReadOnly: readonly string[]): string[] {
  const args: string[] = ['--ro-bind', '/usr', '/usr'];
  for (const dir of SYSTEM_DIRS) {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!stat) continue;
    if (stat.isSymbolicLink()) args.push('--symlink', fs.readlinkSync(dir), dir);
    else args.push('--ro-bind', dir, dir);
  }
  for (const entry of ETC_ENTRIES) args.push('--ro-bind-try', path.join('/etc', entry), path.join('/etc', entry));
  const { passwd, group } = writeAccountFiles(sandboxDir);
  args.push('--ro-bind', passwd, '/etc/passwd', '--ro-bind', group, '/etc/group');
  for (const extra of extraReadOnly) args.push('--ro-bind', extra, extra);
  args.push(
    '--proc', '/proc',
    '--dev', '/dev',
    // Its own PID namespace (it sees only its own processes, and all of them die with it), IPC, hostname, cgroup view.
    '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try',
    '--hostname', 'agent',
    // If the service dies (even by SIGKILL) the agent and its tools die too: no orphan keeps running.
    '--die-with-parent',
    '--cap-drop', 'ALL',
    // No --new-session: the service starts bwrap detached (setsid), so the agent already has no controlling
    // terminal to push input into, and staying in bwrap's process group lets the service's group SIGKILL reach it.
  );
  return args;
}

/** passwd/group naming only root, nobody and the service's own user: the host's accounts stay unlisted. */
function writeAccountFiles(sandboxDir: string): { passwd: string; group: string } {
  fs.mkdirSync(sandboxDir, { recursive: true });
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const passwdLines = ['root:x:0:0:root:/root:/bin/bash', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin'];
  const groupLines = ['root:x:0:', 'nogroup:x:65534:'];
  if (uid !== 0 && uid !== 65534) passwdLines.push(`agent:x:${uid}:${gid}:agent:/nonexistent:/bin/bash`);
  if (gid !== 0 && gid !== 65534) groupLines.push(`agent:x:${gid}:`);
  const passwd = path.join(sandboxDir, 'passwd');
  const group = path.join(sandboxDir, 'group');
  fs.writeFileSync(passwd, `${passwdLines.join('\n')}\n`, { mode: 0o644 });
  fs.writeFileSync(group, `${groupLines.join('\n')}\n`, { mode: 0o644 });
  return { passwd, group };
}

export type ConfinementSetting = 'auto' | 'bwrap' | 'off';

/** How this service's agents run: confined by bubblewrap, or not at all (and why). */
export type AgentConfinement = { kind: 'bwrap'; sandbox: BwrapSandbox } | { kind: 'none'; reason: string };

/**
 * Decides the confinement at start: `off` is none; otherwise bubblewrap is probed by running `true` inside the
 * very namespace an agent would get (a kernel without unprivileged user namespaces, a container without the
 * rights to make namespaces, or a missing `bwrap` all fail here, not at the first chat).
 */
export async function resolveConfinement(
  setting: ConfinementSetting,
  { agentHomeDir, extraReadOnly }: { agentHomeDir: string; extraReadOnly: readonly string[] },
): Promise<AgentConfinement> {
  if (setting === 'off') return { kind: 'none', reason: 'AGENT_CONFINEMENT=off' };
  let version: string;
  try {
    version = (await run('bwrap', ['--version'], { timeout: 10_000 })).stdout.trim();
  } catch {
    return { kind: 'none', reason: 'bubblewrap (`bwrap`) is not installed (Debian/Ubuntu: apt-get install bubblewrap)' };
  }
  const sandboxDir = path.join(agentHomeDir, 'sandbox');
  let sandbox: BwrapSandbox;
  try {
    sandbox = new BwrapSandbox(bwrapBaseArgs(sandboxDir, extraReadOnly));
  } catch (err) {
    return { kind: 'none', reason: `cannot prepare the agent namespace: ${(err as Error).message}` };
  }
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-confinement-probe-'));
  try {
    const home = { home: probe, configDir: probe, tmpDir: probe };
    const wrapped = sandbox.wrap('/bin/sh', ['-c', 'test ! -e /etc/shadow && touch ./probe && test -d /proc/1'], { workspace: probe, home });
    await run(wrapped.command, wrapped.args, { timeout: 20_000, env: { PATH: '/usr/bin:/bin' } });
    return { kind: 'bwrap', sandbox };
  } catch (err) {
    const detail = ((err as { stderr?: string }).stderr || (err as Error).message).trim();
    return { kind: 'none', reason: `bubblewrap cannot create the agent namespace here (${version}): ${detail}` };
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/**
 * The start-up rule: agents that are not confined can read every other chat and the service's own data, which is
 * acceptable only when every chat belongs to the operator. So without confinement a multi-user service (users
 * exist, authentication is delegated to a proxy, or it listens beyond loopback) refuses to start unless the
 * operator accepts the risk (ALLOW_UNCONFINED_AGENTS=true); and AGENT_CONFINEMENT=bwrap never starts unconfined.
 */
export function enforceConfinementPolicy(
  confinement: AgentConfinement,
  { setting, multiUser, allowUnconfined }: { setting: ConfinementSetting; multiUser: boolean; allowUnconfined: boolean },
  log: FastifyBaseLogger,
): void {
  if (confinement.kind === 'bwrap') {
    log.info('agents are confined: each chat agent runs in its own bubblewrap namespace');
    return;
  }
  if (setting === 'bwrap') {
    throw new StartupRefusedError(
      `Refusing to start: AGENT_CONFINEMENT=bwrap but ${confinement.reason}.\n` +
        '  Install bubblewrap (and allow unprivileged user namespaces if the service is not root), or set\n' +
        '  AGENT_CONFINEMENT=auto to fall back to unconfined agents where that is allowed.',
    );
  }
  const warning =
    `AGENTS ARE NOT CONFINED (${confinement.reason}): every chat's agent, and any tool it runs, can read and write ` +
    "whatever this service's user can: other chats' files and transcripts, the database, the service's environment.";
  if (multiUser && !allowUnconfined) {
    throw new StartupRefusedError(
      `Refusing to start: ${warning}\n` +
        'This service has several users (users exist, AUTH_DISABLED=true, or HOST is not loopback), so one user\n' +
        "could read another's chats through the agent.\n" +
        '  - install bubblewrap (apt-get install bubblewrap) so agents are confined (AGENT_CONFINEMENT=auto), or\n' +
        '  - if every user is trusted with all data on this machine: ALLOW_UNCONFINED_AGENTS=true',
    );
  }
  log.warn(multiUser ? `${warning} Accepted by ALLOW_UNCONFINED_AGENTS=true.` : warning);
}

function isUnder(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
