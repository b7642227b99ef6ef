import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { PERMISSION_MODES } from '../protocol/chat.js';

/** The seed's eight tools. */
export const SEED_TOOLS = ['Bash', 'Read', 'Write', 'Edit', 'Glob', 'Grep', 'WebSearch', 'WebFetch'] as const;

/**
 * What the agent may use without asking by default: the seed's tools that only read. Bash, Write and Edit need a
 * user's yes (a `permission_request`) unless the operator lists them in ALLOWED_TOOLS.
 */
export const DEFAULT_ALLOWED_TOOLS = ['Read', 'Glob', 'Grep', 'WebSearch', 'WebFetch'] as const;

export const DEFAULT_SYSTEM_PROMPT =
  'You are a helpful assistant with access to tools. You work inside a private workspace directory; ' +
  'use the tools when they help answer the user, and explain what you did.';

export const PERMISSION_FALLBACKS = ['deny', 'wait'] as const;

export { PERMISSION_MODES };

/** Built-in tools of the agent CLI; ALLOWED_TOOLS entries must name one of these (or an MCP tool). */
export const KNOWN_TOOLS = [
  ...SEED_TOOLS,
  'MultiEdit', 'NotebookEdit', 'TodoWrite', 'Task', 'Agent', 'BashOutput', 'KillShell', 'KillBash',
  'ExitPlanMode', 'ListMcpResourcesTool', 'ReadMcpResourceTool', 'Skill', 'SlashCommand',
] as const;

/** `Bash`, `Bash(git status:*)` or `mcp__server__tool`: a typo such as `bash` fails at start-up, not at the first chat. */
function isToolRule(rule: string): boolean {
  if (rule.startsWith('mcp__')) return true;
  const name = /^([A-Za-z]+)(\(.*\))?$/.exec(rule)?.[1];
  return name !== undefined && (KNOWN_TOOLS as readonly string[]).includes(name);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Where the store lives: a SQLite file (`sqlite:<path>`, `sqlite::memory:`), the embedded default for one process,
 * or a PostgreSQL database (`postgres://user[:password]@host[:port]/db`, also `postgresql://`), which several
 * processes can share.
 */
export type DatabaseTarget = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

function parseDatabaseUrl(url: string, ctx: z.RefinementCtx): DatabaseTarget {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (file.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'sqlite URL needs a path, e.g. sqlite:./data/chat.db' });
      return z.NEVER;
    }
    return { kind: 'sqlite', file: file === ':memory:' ? file : path.resolve(file) };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed?.hostname || parsed.pathname.length <= 1) {
      ctx.addIssue({ code: 'custom', message: 'postgres URL needs a host and a database, e.g. postgres://user@127.0.0.1:5432/chat' });
      return z.NEVER;
    }
    return { kind: 'postgres', url };
  }
  ctx.addIssue({
    code: 'custom',
    message: `unsupported scheme in "${redactUrl(url)}": use sqlite:<path> or postgres://user@host:port/db`,
  });
  return z.NEVER;
}

/**
 * Where the nodes of one deployment share state: `redis://[user:password@]host[:port][/db]` (`rediss://` for TLS).
 * Its presence turns multi-node mode on.
 */
function parseRedisUrl(url: string, ctx: z.RefinementCtx): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !/^rediss?:$/.test(parsed.protocol) || !parsed.hostname) {
    ctx.addIssue({ code: 'custom', message: `"${redactUrl(url)}" is not a Redis URL like redis://host:6379/0` });
    return z.NEVER;
  }
  if (parsed.pathname.length > 1 && !/^\/\d{1,2}$/.test(parsed.pathname)) {
    ctx.addIssue({ code: 'custom', message: `the database of "${redactUrl(url)}" must be a number, e.g. redis://host:6379/0` });
    return z.NEVER;
  }
  return url;
}

/**
 * A node's name in logs, metrics, Redis and the rows of the work it runs: letters, digits, `.`, `_`, `-`, at most
 * 64 characters (a host name fits). It must be unique in the deployment and the same across restarts of one node,
 * because start-up recovery repairs only the work its own node left unfinished.
 */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A URL as it may appear in logs and error messages: without its password. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

/** `https://host[:port]` exactly as browsers send it in `Origin` (no path, no wildcard). */
function parseOrigins(origins: string[], ctx: z.RefinementCtx): string[] {
  return origins.map((origin) => {
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      url = undefined;
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.pathname !== '/' || url.search || url.hash || url.username) {
      ctx.addIssue({ code: 'custom', message: `"${origin}" is not an origin like https://chat.example.com[:port]` });
      return origin;
    }
    return url.origin;
  });
}

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
/** A comma list; `none` is the empty list (a blank value means "use the default"). */
const csv = z
  .string()
  .transform((s) => (s.trim() === 'none' ? [] : s.split(',').map((t) => t.trim()).filter((t) => t.length > 0)));

/**
 * Every environment variable the service reads, with its default. One schema, one read of the environment
 * (in server.ts); the rest of the code receives the frozen Config.
 */
export const EnvSchema = z.object({
  PORT: integer(0, 65535).default(8000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z.string().default('sqlite:./data/chat.db').transform(parseDatabaseUrl),
  WORKSPACE_DIR: z.string().min(1).default('./data/workspaces').transform((p) => path.resolve(p)),
  /** Where the agent CLI keeps its config and session transcripts: ours, never the operator's ~/.claude. */
  AGENT_HOME_DIR: z.string().min(1).default('./data/agent-home').transform((p) => path.resolve(p)),
  /**
   * Where the agents' session transcripts (each chat's model context) live: `files`, the CLI's own files in each
   * chat's agent home (one node); `database`, rows of the chat in the store, so any node resumes any chat with its
   * context (several nodes). Either way the CLI also writes its local files. Unset: see sessionStoreKind.
   */
  SESSION_STORE: z.enum(['files', 'database']).optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),

  SYSTEM_PROMPT: z.string().default(DEFAULT_SYSTEM_PROMPT),
  MAX_TURNS: integer(1, 10_000).default(100),
  ALLOWED_TOOLS: csv
    .refine((rules) => rules.every(isToolRule), {
      message: `every entry must be a tool name (${KNOWN_TOOLS.join(', ')}), a rule like Bash(git:*), or mcp__server__tool`,
    })
    .default([...DEFAULT_ALLOWED_TOOLS]),
  PERMISSION_MODE: z.enum(PERMISSION_MODES).default('default'),
  MODEL: z.string().min(1).optional(),
  /**
   * The models a chat may pick in its own settings (comma list); unset: any model name. A chat can only narrow
   * ALLOWED_TOOLS and PERMISSION_MODE (chats/chat-settings.ts), never widen them.
   */
  ALLOWED_MODELS: csv.optional(),
  /**
   * A model that proposes a short title after a chat's first answer (one small Messages API call with the agent's
   * credentials and base URL). Unset: chats keep the title made from their first message.
   */
  TITLE_MODEL: z.string().min(1).optional(),
  /** Most an answer to one message may cost, in USD (the SDK's maxBudgetUsd); unset: no limit. */
  MAX_COST_PER_MESSAGE_USD: z.coerce.number().positive().optional(),
  /** Most one user (local mode: all its chats together) may spend per UTC day, in USD; unset: no limit. */
  MAX_COST_PER_USER_PER_DAY_USD: z.coerce.number().positive().optional(),
  /** How long a permission question waits for a user's answer before the tool is denied. */
  PERMISSION_TIMEOUT_MS: integer(100, 86_400_000).default(120_000),
  /**
   * What happens to a permission question when no socket following the chat declared the `permission_prompts`
   * capability: `deny` settles it at once (the tool is not run, and its result says why), `wait` asks anyway and
   * waits PERMISSION_TIMEOUT_MS (for clients that answer without declaring it).
   */
  PERMISSION_FALLBACK: z.enum(PERMISSION_FALLBACKS).default('deny'),
  /**
   * Run the agent's Bash commands in the CLI's OS sandbox (bubblewrap on Linux: Debian packages `bubblewrap` and
   * `socat`). Refuses to run commands unsandboxed when the sandbox is unavailable.
   */
  AGENT_SANDBOX: boolean.default(false),
  MCP_SERVERS_FILE: z.string().min(1).optional().transform((p) => (p ? path.resolve(p) : undefined)),
  /**
   * How each chat's agent CLI is confined to its workspace (agent/confinement.ts): `bwrap` (a bubblewrap namespace
   * that mounts only the chat's workspace, its own home and temp, and the system's binaries; the service refuses
   * to start if bubblewrap does not work), `off`, or `auto` (bwrap when it works, else unconfined with a warning).
   */
  AGENT_CONFINEMENT: z.enum(['auto', 'bwrap', 'off']).default('auto'),
  /**
   * Lets a service whose agents run unconfined serve several users (users exist, AUTH_DISABLED, or a HOST other
   * than loopback); without it such a service refuses to start. Each user's agent can then read the others' data.
   */
  ALLOW_UNCONFINED_AGENTS: boolean.default(false),
  /** More host paths (comma list of absolute paths) mounted read-only into every confined agent, e.g. /opt/tools. */
  AGENT_READONLY_PATHS: csv
    .refine((paths) => paths.every((p) => path.isAbsolute(p)), { message: 'every entry must be an absolute path' })
    .default([]),

  /** Passed to the agent CLI, and nothing else of the service's environment is (see agent/agent-env.ts). */
  ANTHROPIC_API_KEY: z.string().min(1).optional(),
  ANTHROPIC_AUTH_TOKEN: z.string().min(1).optional(),
  ANTHROPIC_BASE_URL: z.url().optional(),
  /** Retries the CLI makes on API errors; its default (10, ~3 minutes) hides failures from users. */
  AGENT_MAX_RETRIES: integer(0, 10).default(2),
  /** Per-request API timeout of the CLI, in ms; its default waits over six minutes on a hung API. */
  AGENT_API_TIMEOUT_MS: integer(1_000, 3_600_000).default(120_000),
  /** How long `stop` waits for the SDK's interrupt before closing the agent process instead. */
  AGENT_INTERRUPT_TIMEOUT_MS: integer(100, 60_000).default(3_000),

  /**
   * The agent CLI to run instead of the SDK's bundled one (a path). A CLI that dies before it starts is retried
   * after AGENT_START_BACKOFF_MS, doubling per failure in a row up to AGENT_START_BACKOFF_MAX_MS.
   */
  AGENT_CLI_PATH: z.string().min(1).optional().transform((p) => (p ? path.resolve(p) : undefined)),
  AGENT_START_BACKOFF_MS: integer(10, 600_000).default(1_000),
  AGENT_START_BACKOFF_MAX_MS: integer(10, 3_600_000).default(60_000),
  /**
   * The CPU priority (nice value, 0-19) agent CLIs and their tools run at, below the service's own: when the agents
   * saturate the cores, the service's event loop still runs at once, so no chat's stream waits behind another
   * chat's agent. Agents keep every cycle the service does not use. 0: the service's priority (agent-priority.ts).
   */
  AGENT_NICE: integer(0, 19).default(5),
  /** Most agent CLI processes alive at once (~180 MB each); the least recently used idle one makes room. */
  MAX_LIVE_AGENTS: integer(1, 10_000).default(16),
  /** An agent idle this long is closed; its chat resumes transparently on the next message. */
  AGENT_IDLE_TIMEOUT_MS: integer(1_000, 86_400_000).default(600_000),
  /** Start a chat's agent when a client subscribes, so the first answer skips the CLI's cold start. */
  AGENT_PREWARM: boolean.default(true),
  /** How often a streaming answer is checkpointed to the database: the most a crash can lose. */
  STREAM_CHECKPOINT_MS: integer(50, 60_000).default(1_000),
  /** Default page size: messages in a subscriber's `history` and in GET .../messages, chats in GET /api/chats. */
  PAGE_SIZE: integer(1, 100_000).default(500),
  /**
   * About the most bytes of `history` (and of `tool_history`) sent on subscribe; older messages are paged over REST
   * (`has_more`). The newest message is always sent. Clients with the `image_urls` capability get images by
   * reference, so their snapshot is text only.
   */
  HISTORY_MAX_BYTES: integer(64 * 1024, 1024 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Longest tool output sent whole in `tool_history` and `tool_result`; longer ones are cut with a marker. */
  TOOL_OUTPUT_MAX_CHARS: integer(1_000, 100_000_000).default(65_536),
  /** Recent events kept per chat for clients that reconnect with their last `seq`. */
  REPLAY_BUFFER_EVENTS: integer(0, 1_000_000).default(2_000),
  REPLAY_BUFFER_BYTES: integer(0, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  /** A WebSocket whose unsent data exceeds this is closed (code 4008): a stalled client cannot grow memory. */
  WS_MAX_BUFFERED_BYTES: integer(64 * 1024, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Ping interval; a connection that did not answer the previous ping is dropped. */
  WS_HEARTBEAT_MS: integer(1_000, 3_600_000).default(30_000),

  /** Largest decoded image accepted, and most images per message. */
  MAX_IMAGE_BYTES: integer(1, 50 * 1024 * 1024).default(5 * 1024 * 1024),
  MAX_IMAGES_PER_MESSAGE: integer(0, 100).default(10),
  MAX_MESSAGE_CHARS: integer(1, 10_000_000).default(100_000),

  /** The agent's tools (Bash) find programs through it; passed to the CLI, like LANG. */
  PATH: z.string().min(1).default('/usr/local/bin:/usr/bin:/bin'),
  LANG: z.string().min(1).default('C.UTF-8'),

  SHUTDOWN_TIMEOUT_MS: integer(100, 120_000).default(10_000),
  TRUST_PROXY: boolean.default(false),

  /**
   * Turns authentication off entirely, even once users exist, and allows a non-loopback HOST without it. For a
   * service behind an authenticating proxy; logged as a warning at every start.
   */
  AUTH_DISABLED: boolean.default(false),
  /** Browser origins (exact, e.g. https://chat.example.com) allowed to call the REST API and open the WebSocket. */
  CORS_ORIGINS: csv.transform(parseOrigins).default([]),
  /** REST requests per minute, per user (per IP for requests without a valid token); 0: no limit. */
  RATE_LIMIT_PER_MINUTE: integer(0, 1_000_000).default(300),
  /** `chat` frames per minute, per user, over all their sockets; 0: no limit. */
  MESSAGES_PER_MINUTE: integer(0, 1_000_000).default(30),
  /**
   * The credential of GET /metrics (`Authorization: Bearer <METRICS_TOKEN>`): its figures are every user's, so a
   * user's token does not open it. Unset: /metrics answers only without authentication in force (local mode).
   */
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
  /** Open WebSockets per user (per IP with AUTH_DISABLED; local mode is not limited); more are closed with 4429. 0: no limit. */
  MAX_SOCKETS_PER_USER: integer(0, 1_000_000).default(32),
  /** Chats one user may own; creating more answers 403. 0: no limit. */
  MAX_CHATS_PER_USER: integer(0, 100_000_000).default(1_000),

  /** Shared state between the nodes of one deployment (multi-node mode); unset: one process, nothing shared. */
  REDIS_URL: z.string().transform(parseRedisUrl).optional(),
  /** Prepended to every Redis key and channel: several deployments (or tests) can share one Redis. */
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{1,64}$/, 'REDIS_KEY_PREFIX may hold letters, digits, ":", ".", "_" and "-" (at most 64)')
    .default('agent-chat:'),
  /** This node's name (default: the machine's host name); see NODE_ID_PATTERN. */
  NODE_ID: z
    .string()
    .default(() => os.hostname())
    .refine((id) => NODE_ID_PATTERN.test(id), {
      message: 'NODE_ID must be 1-64 letters, digits, ".", "_" or "-" starting with a letter or digit (default: the host name; set it when the host name does not fit)',
    }),

  /**
   * Answers come from the repo's scripted fake model (`npm run demo` sets it): GET /api/info says so and the web
   * client shows a banner, so nobody mistakes scripted answers for Claude's.
   */
  DEMO_MODE: boolean.default(false),
});

export type Config = Readonly<z.output<typeof EnvSchema>>;

/** SESSION_STORE, or by default `database` in multi-node mode (REDIS_URL: a chat's agent moves between nodes), else `files`. */
export function sessionStoreKind(config: Pick<Config, 'SESSION_STORE' | 'REDIS_URL'>): 'files' | 'database' {
  return config.SESSION_STORE ?? (config.REDIS_URL ? 'database' : 'files');
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Blank values count as unset, so `PORT=` in a .env file means "use the default". */
function withoutBlanks(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') out[k] = v;
  return out;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = EnvSchema.safeParse(withoutBlanks(env));
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`),
    );
  }
  return Object.freeze(parsed.data);
}

/** loadConfig for an entry point: a ConfigError is printed and gives undefined (the caller exits with 2). */
export function loadConfigOrReport(
  env: Record<string, string | undefined>,
  report: (message: string) => void = console.error,
): Config | undefined {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    report(err.message);
    return undefined;
  }
}
