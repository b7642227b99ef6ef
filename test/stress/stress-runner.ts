// Seeded, reproducible randomized interrupt stress against the REAL service + REAL Agent SDK/CLI + the scripted fake
// model. A PRNG plans interleaved operations (chat, stop, chat during an answer, subscribe, disconnect/reconnect with
// or without last_seq, pauses) over several chats and sockets; they are issued concurrently across chats, then the
// run settles and every socket's recorded stream is checked against the protocol's interrupt guarantees
// (docs/protocol.md). Violations are collected, never thrown mid-run.
//
// Besides the planned sockets, one extra "observer" socket follows every chat from the start and never disconnects:
// it is the complete view (global truth for query order, terminal seqs and the streamed text compared to storage).
//
// The target is a set of nodes (stress-target.ts): one in-process service, or several node processes sharing Postgres
// and Redis, where sockets also reconnect to random nodes and nodes are killed (-9) and restarted; the same checks
// then hold across nodes, plus invariant 10 (never two live agents for one chat), sampled during the run.
import type { ChatMessage } from '../../src/protocol/chat.js';
import { TERMINAL_EVENT_TYPES, type ServerEvent } from '../../src/protocol/ws.js';
import { createChat } from '../helpers/agent-server.js';
import { mulberry32 } from '../helpers/prng.js';
import { TestClient } from '../helpers/ws-client.js';
import { agentProcesses, type StressTarget } from './stress-target.js';

// ------------------------------------------------------------------------------------------------ PRNG

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** Integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** Picks a key by weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let r = this.next() * total;
    for (const [k, w] of entries) {
      r -= w;
      if (r < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }
}

// ------------------------------------------------------------------------------------------------ the plan

export type Operation =
  | { kind: 'chat'; socket: number; chat: number; content: string }
  /** A slow answer, then (after `delayMs`) another message to the same chat while it runs. */
  | { kind: 'barge'; socket: number; chat: number; first: string; delayMs: number; socket2: number; content: string }
  | { kind: 'stop'; socket: number; chat: number }
  | { kind: 'subscribe'; socket: number; chat: number }
  /** Only planned with `clearHistory`: forget the conversation (a running answer ends `cancelled`). */
  | { kind: 'clear'; socket: number; chat: number }
  /** `node`: the node it connects to again (only planned with several nodes; otherwise the one node). */
  | { kind: 'reconnect'; socket: number; downMs: number; withLastSeq: boolean; abrupt: boolean; node?: number }
  /** Only planned with several nodes: kill -9 of a node other than the first, started again after `downMs`. */
  | { kind: 'kill'; node: number; downMs: number }
  /** Only planned with `modelFaults`: every model call fails with `status` (and a retry-after) for `ms`. */
  | { kind: 'storm'; ms: number; status: 429 | 529 }
  | { kind: 'pause'; ms: number };

const OP_WEIGHTS = { chat: 34, barge: 10, stop: 14, subscribe: 10, reconnect: 8, pause: 24, clear: 0 };
/** With `clearHistory`, a few `clear_history` frames join the mix. */
const CLEAR_WEIGHT = 3;
const CONTENT_WEIGHTS = { echo: 30, slow: 25, bash: 14, bashslow: 5, error: 12, midstream: 14 };
/** With `modelFaults`, the fake model's fault scripts join the mix, and a few storms. */
const FAULT_CONTENT_WEIGHTS = { ...CONTENT_WEIGHTS, overloaded: 6, stall: 3, malformed: 4, cut: 5 };
const STORM_WEIGHT = 1;
/** With several nodes, about one operation in fifty kills one (a kill and restart takes seconds under load). */
const KILL_WEIGHT = 2;

/**
 * A message; `tag` makes every content of a run unique (the fake model ignores extra words after a directive's
 * arguments; `/error` makes it the error text, Bash a comment), so a `user_message` names the frame it answers.
 */
function content(rng: Rng, tag: string, modelFaults = false): string {
  const kind = modelFaults ? rng.weighted(FAULT_CONTENT_WEIGHTS) : rng.weighted(CONTENT_WEIGHTS);
  switch (kind) {
    case 'echo':
      return `hello ${rng.chance(0.5) ? 'there' : 'world and more words here'} ${tag}`;
    case 'slow':
      return `/slow ${rng.int(2, 12)} ${rng.int(5, 50)} ${tag}`;
    case 'bash':
      return `/bash echo X ${tag}`;
    case 'bashslow':
      return `/bashslow 1 ${tag}`;
    case 'error':
      return `/error 500 ${tag}`;
    case 'midstream':
      return `/midstream-error ${tag}`;
    case 'overloaded':
      return `/overloaded ${rng.chance(0.5) ? 529 : 429} ${rng.int(0, 1)} ${tag}`;
    case 'stall':
      return `/stall ${rng.int(1, 3)} ${tag}`;
    case 'malformed':
      return `/malformed ${rng.int(0, 3)} ${tag}`;
    case 'cut':
      return `/disconnect ${rng.int(0, 3)} ${tag}`;
  }
}

/** The operations of a run: a pure function of its parameters, so a seed reproduces the same sequence. */
export function planOperations(
  seed: number,
  ops: number,
  chats: number,
  sockets: number,
  {
    clearHistory = false,
    modelFaults = false,
    nodes = 1,
  }: { clearHistory?: boolean; modelFaults?: boolean; nodes?: number } = {},
): Operation[] {
  const rng = new Rng(seed);
  // No `storm` key at all without modelFaults, so the plans of existing seeds stay the same.
  const weights = {
    ...OP_WEIGHTS,
    clear: clearHistory ? CLEAR_WEIGHT : 0,
    ...(modelFaults ? { storm: STORM_WEIGHT } : {}),
    ...(nodes > 1 ? { kill: KILL_WEIGHT } : {}),
  } as Record<keyof typeof OP_WEIGHTS | 'storm' | 'kill', number>;
  const plan: Operation[] = [];
  for (let i = 0; i < ops; i++) {
    const socket = rng.int(0, sockets - 1);
    const chat = rng.int(0, chats - 1);
    switch (rng.weighted(weights)) {
      case 'chat':
        plan.push({ kind: 'chat', socket, chat, content: content(rng, `#${i}`, modelFaults) });
        break;
      case 'barge':
        plan.push({
          kind: 'barge',
          socket,
          chat,
          first: `/slow ${rng.int(8, 20)} ${rng.int(20, 50)} #${i}a`,
          delayMs: rng.int(0, 400),
          socket2: rng.int(0, sockets - 1),
          content: content(rng, `#${i}b`, modelFaults),
        });
        break;
      case 'stop':
        plan.push({ kind: 'stop', socket, chat });
        break;
      case 'subscribe':
        plan.push({ kind: 'subscribe', socket, chat });
        break;
      case 'clear':
        plan.push({ kind: 'clear', socket, chat });
        break;
      case 'reconnect':
        plan.push({
          kind: 'reconnect',
          socket,
          downMs: rng.int(0, 300),
          withLastSeq: rng.chance(0.5),
          abrupt: rng.chance(0.5),
          // Drawn only with several nodes, so the plans of single-node seeds stay the same.
          ...(nodes > 1 ? { node: rng.int(0, nodes - 1) } : {}),
        });
        break;
      case 'kill':
        plan.push({ kind: 'kill', node: rng.int(1, nodes - 1), downMs: rng.int(500, 5000) });
        break;
      case 'pause':
        plan.push({ kind: 'pause', ms: rng.int(0, 150) });
        break;
      case 'storm':
        plan.push({ kind: 'storm', ms: rng.int(500, 3000), status: rng.chance(0.5) ? 529 : 429 });
        break;
    }
  }
  return plan;
}

// ------------------------------------------------------------------------------------------------ running

/**
 * Service settings for a stress run: a small replay buffer so that reconnects with last_seq take both paths (exact
 * replay, and the history fallback once the missed events are no longer kept).
 */
export const STRESS_SERVER_ENV: Record<string, string> = {
  REPLAY_BUFFER_EVENTS: '48',
  // The stress sends far more than a person would: no per-user rate limits (settings unknown to a build are ignored).
  MESSAGES_PER_MINUTE: '0',
  RATE_LIMIT_PER_MINUTE: '0',
};

export interface StressOptions {
  seed: number;
  ops: number;
  chats?: number;
  sockets?: number;
  /**
   * Frame error codes that are expected under the chosen settings (e.g. `agent_busy` with a small MAX_LIVE_AGENTS):
   * counted in `refused`, not violations. A refused `chat` frame counts as answered.
   */
  allowedFrameErrors?: string[];
  /** Also plan `clear_history` frames (off by default: the plan of a seed stays the same). */
  clearHistory?: boolean;
  /** Also plan the fake model's fault scripts (429/529 with retry-after, stalls, malformed SSE, cuts) and storms. */
  modelFaults?: boolean;
  /**
   * The nodes under test (serviceTarget for one in-process service, startClusterTarget for several node processes).
   * runStress closes it at the end (it must, to check for leftover agent processes). With several nodes the plan
   * also reconnects sockets to random nodes and kills (-9) and restarts nodes other than the first, where the
   * observer is.
   */
  target: StressTarget;
  /** Most `chat` frames per chat not yet answered by a `user_message` before the next one waits. */
  maxPendingPerChat?: number;
  /**
   * How long the service may send nothing at all (no event on the observer) while chat frames are unanswered or
   * queries running, before that counts as lost. Waiting is measured from the service's last event, not from the
   * frame: on a loaded machine a frame can be slow, and only a service that has gone quiet has lost it.
   */
  settleTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface StressFigures {
  seed: number;
  operations: number;
  queries: number;
  results: number;
  cancelled: number;
  errors: number;
  reconnects: number;
  replays: number;
  historyFallbacks: number;
  /** Frames refused with an allowed error code. */
  refused: number;
  /**
   * Chat frames sent on a connection that was then reset (terminated without a close handshake) and never
   * echoed: TCP discards what the service had not read when the reset came, so the client cannot know they were
   * received. The protocol's rule: a message is accepted when its `user_message` arrives; the client sends it again
   * after reconnecting otherwise. Counted, not violations.
   */
  cutOffByReset: number;
  /** Snapshots (subscribe without replay) checked against the stream, and those taken while an answer ran. */
  snapshots: number;
  midAnswerSnapshots: number;
  /** Agent CLI processes of this service alive just before it closed (a sanity figure for invariant 9). */
  agentsBeforeClose: number;
  nodes: number;
  /** Nodes killed with -9 (each started again after a while), and queries ended `node_lost`. */
  kills: number;
  nodeLost: number;
  /** Samples of the agent processes per chat across all nodes (invariant 10), and the longest an orphan lived. */
  agentSamples: number;
  /** Two agents of one chat seen together for less than CLOSING_AGENT_GRACE_MS (one of them being closed). */
  closingOverlaps: number;
  longestOrphanMs: number;
  violations: string[];
  durationMs: number;
}

interface Conn {
  label: string;
  /** Index of the node it is connected to. */
  node: number;
  client: TestClient;
  /** chat id -> index in client.events at the moment the socket first asked to follow it. */
  follows: Map<string, number>;
  /** Subscriptions with last_seq (always the first subscription of that chat on this connection). */
  replays: Map<string, number>;
  closed: boolean;
  /** Allowed refusals (frame errors) per chat, counted incrementally from client.events[refusalsScanned]. */
  refusals: Map<string, number>;
  refusalsScanned: number;
  /** Terminated without a close handshake (an abrupt reconnect). */
  reset: boolean;
}

interface SentChat {
  content: string;
  conn: Conn;
  /** Reported as stuck: no longer holds the chat's capacity (still checked at the end). */
  givenUp?: boolean;
}

interface LogicalSocket {
  index: number;
  conn: Conn;
  /** Frames and reconnects of this socket run in order through this chain. */
  chain: Promise<void>;
  /** The last seq this socket saw per chat, over all its connections. */
  lastSeq: Map<string, number>;
  generation: number;
}

type Ev = ServerEvent;
const TERMINAL = new Set<string>(TERMINAL_EVENT_TYPES);
const SNAPSHOT = new Set(['history', 'tool_history', 'processing_state']);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const qid = (e: Ev): string | undefined => ('query_id' in e && typeof e.query_id === 'string' ? e.query_id : undefined);
const cid = (e: Ev): string | undefined => ('chat_id' in e && typeof e.chat_id === 'string' ? e.chat_id : undefined);
const seqOf = (e: Ev): number | undefined => ('seq' in e && typeof e.seq === 'number' ? e.seq : undefined);
const isTerminal = (e: Ev) => TERMINAL.has(e.type) && qid(e) !== undefined;

/** An agent of a killed node must stop by itself within this long (the service's watchdog; issue's bound: 10 s). */
export const ORPHAN_AGENT_LIMIT_MS = 10_000;
/** How long an agent being closed may outlive the start of its successor (SIGTERM, SIGKILL after 5 s, load). */
export const CLOSING_AGENT_GRACE_MS = 10_000;

export async function runStress(options: StressOptions): Promise<StressFigures> {
  const { seed, ops, target } = options;
  const nodes = target.nodes;
  const homes = nodes.map((n) => n.agentHome);
  const chatCount = options.chats ?? 4;
  const socketCount = options.sockets ?? 3;
  const maxPending = options.maxPendingPerChat ?? 2;
  const settleTimeoutMs = options.settleTimeoutMs ?? 60_000;
  const log = options.log ?? (() => {});
  const started = Date.now();
  const violations: string[] = [];
  const violate = (v: string) => violations.push(v);

  const onUnhandled = (reason: unknown) => {
    violate(`8: unhandled rejection: ${reason instanceof Error ? reason.stack ?? reason.message : String(reason)}`);
  };
  process.on('unhandledRejection', onUnhandled);

  const conns: Conn[] = [];
  const sockets: LogicalSocket[] = [];
  let reconnects = 0;
  let agentsBeforeClose = 0;
  let serverClosed = false;
  const chatIds: string[] = [];
  /** Every chat frame sent, per chat. */
  const sent = new Map<string, SentChat[]>();
  const background = new Set<Promise<void>>();

  const connect = async (label: string, node: number): Promise<Conn> => {
    const client = await TestClient.connect(nodes[node]!.wsUrl);
    const conn: Conn = { label, node, client, follows: new Map(), replays: new Map(), closed: false, refusals: new Map(), refusalsScanned: 0, reset: false };
    client.socket.on('close', () => {
      conn.closed = true;
    });
    conns.push(conn);
    return conn;
  };
  const follow = (conn: Conn, chatId: string) => {
    if (!conn.follows.has(chatId)) conn.follows.set(chatId, conn.client.events.length);
  };

  let observer: Conn | undefined;
  const allowedErrors = new Set(options.allowedFrameErrors ?? []);
  /**
   * The chat frames of a chat not answered yet. A frame is answered by the user_message with its (unique) content,
   * or by an allowed refusal on its connection (refusals match that connection's unanswered frames of the chat in
   * order: a socket's frames are handled one at a time). A refusal to a connection that closed meanwhile is never
   * seen: with allowed refusals, a frame of a closed connection counts as answered.
   */
  // Echoes and refusals are counted incrementally: rescanning every event on each check made the runner's own
  // work grow with the square of the run's length (it polls every 10 ms), which starved long runs.
  const echoed = new Map<string, Set<string>>();
  let echoesScanned = 0;
  const echoesOf = (chatId: string): Set<string> => {
    const events = observer!.client.events;
    for (; echoesScanned < events.length; echoesScanned++) {
      const e = events[echoesScanned]!;
      if (e.type !== 'user_message' || e.chat_id === undefined) continue;
      if (!echoed.has(e.chat_id)) echoed.set(e.chat_id, new Set());
      echoed.get(e.chat_id)!.add(e.content);
    }
    return echoed.get(chatId) ?? new Set();
  };
  const refusalsOf = (conn: Conn, chatId: string): number => {
    const events = conn.client.events;
    for (; conn.refusalsScanned < events.length; conn.refusalsScanned++) {
      const e = events[conn.refusalsScanned]!;
      if (e.type === 'error' && e.chat_id !== undefined && !e.query_id && allowedErrors.has(e.code)) {
        conn.refusals.set(e.chat_id, (conn.refusals.get(e.chat_id) ?? 0) + 1);
      }
    }
    return conn.refusals.get(chatId) ?? 0;
  };
  const unanswered = (chatId: string, includeGivenUp = false): SentChat[] => {
    const frames = sent.get(chatId) ?? [];
    const echoes = echoesOf(chatId);
    const open = frames.filter((f) => !echoes.has(f.content));
    const left: SentChat[] = [];
    for (const conn of new Set(open.map((f) => f.conn))) {
      const mine = open.filter((f) => f.conn === conn);
      const refusals = refusalsOf(conn, chatId);
      // refused frames are never echoed, and are answered before the frames after them
      const rest = mine.slice(refusals).filter((f) => includeGivenUp || !f.givenUp);
      if (allowedErrors.size > 0 && conn.closed) continue;
      // Not echoed by now, a frame of a reset connection may never have been read (see cutOffByReset).
      if (conn.reset) continue;
      left.push(...rest);
    }
    return left;
  };

  /** Queues work on a socket after its earlier frames and reconnects. */
  const onSocket = (sock: LogicalSocket, what: string, task: (conn: Conn) => void | Promise<void>): Promise<void> => {
    const run = sock.chain.then(() => task(sock.conn));
    sock.chain = run.catch((err: unknown) => {
      violate(`runner: ${what} on socket ${sock.index} failed: ${String(err)}`);
    });
    return sock.chain;
  };

  /** When the observer last received anything: the service's progress. */
  const lastProgress = () => {
    const n = observer?.client.events.length ?? 0;
    if (n !== progress.events) {
      progress.events = n;
      progress.at = Date.now();
    }
    return progress.at;
  };
  const progress = { events: 0, at: Date.now() };

  /**
   * Waits until the chat has fewer than `maxPending` chat frames not yet answered by a user_message. A slow service
   * is waited for; one that sends nothing at all for `settleTimeoutMs` meanwhile has lost the frames (a violation;
   * they stop holding the capacity and are checked again at the end).
   */
  const awaitCapacity = async (chatId: string) => {
    while (unanswered(chatId).length >= maxPending) {
      if (Date.now() - lastProgress() > settleTimeoutMs) {
        const stuck = unanswered(chatId);
        const names = stuck.map((f) => `"${f.content}" (${f.conn.label})`);
        violate(`runner: chat frame(s) ${names.join(', ')} to chat ${chatIds.indexOf(chatId)} unanswered while the service sent nothing for ${settleTimeoutMs} ms`);
        for (const f of stuck) f.givenUp = true;
        return;
      }
      await sleep(10);
    }
  };

  const sendChat = async (sock: LogicalSocket, chatId: string, text: string) => {
    await awaitCapacity(chatId);
    await onSocket(sock, 'chat', (conn) => {
      follow(conn, chatId);
      if (!sent.has(chatId)) sent.set(chatId, []);
      sent.get(chatId)!.push({ content: text, conn });
      conn.client.send({ type: 'chat', chat_id: chatId, content: text });
    });
  };

  /** `preferred` if it is up, else the next node that is (the first node is never killed). */
  const liveNode = (preferred: number): number => {
    for (let k = 0; k < nodes.length; k++) {
      const i = (preferred + k) % nodes.length;
      if (nodes[i]!.up) return i;
    }
    return 0;
  };

  /** With `onlyFrom`, only a socket (then) connected to that node moves: one leaving a killed node. */
  const reconnect = (sock: LogicalSocket, op: Omit<Extract<Operation, { kind: 'reconnect' }>, 'kind' | 'socket'>, onlyFrom?: number) =>
    onSocket(sock, 'reconnect', async (old) => {
      if (onlyFrom !== undefined && old.node !== onlyFrom) return;
      if (onlyFrom === undefined) reconnects++;
      const followed = [...old.follows.keys()];
      if (op.abrupt) {
        // Let frames already sent reach the server; then drop the connection without a close handshake. A connection
        // to a node that was just killed never drains: its buffer is given up after a second.
        for (let waited = 0; old.client.socket.bufferedAmount > 0 && !old.closed && waited < 1_000; waited += 5) await sleep(5);
        await sleep(30);
        const closed = new Promise<void>((r) => (old.closed ? r() : old.client.socket.once('close', () => r())));
        old.reset = true;
        old.client.socket.terminate();
        await closed;
      } else {
        await old.client.close();
      }
      // The last seq this socket saw per chat: the old connection delivers nothing more once closed.
      for (const e of old.client.events) {
        const chatId = cid(e);
        const seq = seqOf(e);
        if (chatId !== undefined && seq !== undefined) sock.lastSeq.set(chatId, Math.max(sock.lastSeq.get(chatId) ?? seq, seq));
      }
      await sleep(op.downMs);
      // A node may be killed while the socket connects to it: then another one.
      let conn: Conn | undefined;
      for (let attempt = 0; !conn; attempt++) {
        const node = liveNode(op.node ?? old.node);
        try {
          conn = await connect(`s${sock.index}#${++sock.generation}@${node}`, node);
        } catch (err) {
          if (attempt >= 20) throw err;
          await sleep(250);
        }
      }
      sock.conn = conn;
      for (const chatId of followed) {
        const last = sock.lastSeq.get(chatId);
        follow(conn, chatId);
        if (op.withLastSeq && last !== undefined) {
          conn.replays.set(chatId, last);
          conn.client.send({ type: 'subscribe', chat_id: chatId, last_seq: last });
        } else {
          conn.client.send({ type: 'subscribe', chat_id: chatId });
        }
      }
    });

  /**
   * kill -9 of a node (if up), then its sockets connect again to a live node with their last seqs, as a client
   * would; the node starts again after `downMs`. Frames sent on its connections may be lost with it (see `reset`).
   */
  let kills = 0;
  const killNode = (node: number, downMs: number) => {
    if (!target.kill || !target.restart || !nodes[node]!.up) return;
    kills++;
    for (const conn of conns) if (conn.node === node) conn.reset = true;
    const task = (async () => {
      await target.kill!(node);
      log(`stress: node ${node} killed`);
      await Promise.all(sockets.map((sock) => reconnect(sock, { downMs: 0, withLastSeq: true, abrupt: true, node: node + 1 }, node)));
      await sleep(downMs);
      await target.restart!(node);
      log(`stress: node ${node} started again`);
    })().catch((err: unknown) => {
      violate(`runner: kill/restart of node ${node} failed: ${String(err)}`);
    });
    background.add(task);
    void task.finally(() => background.delete(task));
  };

  /**
   * Invariant 10, sampled while the run goes on: never two live agents for one chat across all nodes (an agent of a
   * killed node, started before the kill, is its orphan: it cannot publish, the lease is fenced, and must stop by
   * itself within ORPHAN_AGENT_LIMIT_MS). An agent being replaced or closed still lives a while after its successor
   * starts (the SDK ends it with SIGTERM, SIGKILL 5 s later): two agents of a chat count as a violation only once
   * both have been alive together for CLOSING_AGENT_GRACE_MS; shorter overlaps are counted.
   */
  let agentSamples = 0;
  /** The most agent processes one sample found: the finder works if it ever saw one. */
  let mostAgentsSeen = 0;
  let longestOrphanMs = 0;
  let closingOverlaps = 0;
  const overlaps = new Map<string, { since: number; reported: boolean }>();
  let sampling = true;
  const sampleAgents = async () => {
    while (sampling) {
      const now = Date.now();
      const live = new Map<string, number[]>();
      const found = agentProcesses(homes);
      mostAgentsSeen = Math.max(mostAgentsSeen, found.length);
      for (const a of found) {
        const killedAt = nodes[a.node]!.killedAt;
        if (killedAt !== undefined && a.startedAt < killedAt) {
          longestOrphanMs = Math.max(longestOrphanMs, now - killedAt);
          if (now - killedAt > ORPHAN_AGENT_LIMIT_MS) {
            violate(`10: agent ${a.pid} of chat ${chatIds.indexOf(a.chatId)} still alive ${now - killedAt} ms after its node ${a.node} was killed`);
          }
          continue;
        }
        if (!live.has(a.chatId)) live.set(a.chatId, []);
        live.get(a.chatId)!.push(a.pid);
      }
      const seen = new Set<string>();
      for (const [chatId, pids] of live) {
        if (pids.length < 2) continue;
        const key = `${chatId} ${pids.sort((x, y) => x - y).join(',')}`;
        seen.add(key);
        const overlap = overlaps.get(key) ?? { since: now, reported: false };
        overlaps.set(key, overlap);
        if (!overlap.reported && now - overlap.since > CLOSING_AGENT_GRACE_MS) {
          overlap.reported = true;
          violate(`10: agents ${pids.join(', ')} of chat ${chatIds.indexOf(chatId)} alive together for more than ${CLOSING_AGENT_GRACE_MS} ms`);
        }
      }
      for (const key of overlaps.keys()) {
        if (seen.has(key)) continue;
        overlaps.delete(key);
        closingOverlaps++;
      }
      agentSamples++;
      await sleep(250);
    }
  };
  const sampler = sampleAgents();

  try {
    for (let c = 0; c < chatCount; c++) chatIds.push(await createChat(nodes[0]!.url, `stress ${seed} chat ${c}`));
    // A subscription takes a chat nobody owns: chat c is first followed on node c mod n, so the chats start owned
    // by different nodes (the observer alone, on the first node, would make it the owner of every chat, and no
    // kill would ever end a running answer).
    for (const [c, chatId] of chatIds.entries()) {
      if (c % nodes.length === 0) continue;
      const first = await TestClient.connect(nodes[c % nodes.length]!.wsUrl);
      first.send({ type: 'subscribe', chat_id: chatId });
      await first.waitFor((e) => e.type === 'processing_state' && e.chat_id === chatId);
      await first.close();
    }
    observer = await connect('observer', 0);
    for (const chatId of chatIds) {
      const from = observer.client.events.length;
      follow(observer, chatId);
      observer.client.send({ type: 'subscribe', chat_id: chatId });
      await observer.client.waitFor((e) => e.type === 'processing_state' && e.chat_id === chatId, { from });
    }
    for (let s = 0; s < socketCount; s++) {
      const conn = await connect(`s${s}#0`, s % nodes.length);
      sockets.push({ index: s, conn, chain: Promise.resolve(), lastSeq: new Map(), generation: 0 });
    }
    const plan = planOperations(seed, ops, chatCount, socketCount, {
      clearHistory: options.clearHistory ?? false,
      modelFaults: options.modelFaults ?? false,
      nodes: nodes.length,
    });
    log(`stress: seed=${seed} planned ${plan.length} operations over ${chatCount} chats and ${socketCount} sockets`);
    for (const op of plan) {
      switch (op.kind) {
        case 'pause':
          await sleep(op.ms);
          break;
        case 'chat':
          await sendChat(sockets[op.socket]!, chatIds[op.chat]!, op.content);
          break;
        case 'barge': {
          const chatId = chatIds[op.chat]!;
          const task = (async () => {
            await sendChat(sockets[op.socket]!, chatId, op.first);
            await sleep(op.delayMs);
            await sendChat(sockets[op.socket2]!, chatId, op.content);
          })();
          background.add(task);
          void task.finally(() => background.delete(task));
          break;
        }
        case 'stop':
          void onSocket(sockets[op.socket]!, 'stop', (conn) => conn.client.send({ type: 'stop', chat_id: chatIds[op.chat]! }));
          break;
        case 'subscribe':
          void onSocket(sockets[op.socket]!, 'subscribe', (conn) => {
            follow(conn, chatIds[op.chat]!);
            conn.client.send({ type: 'subscribe', chat_id: chatIds[op.chat]! });
          });
          break;
        case 'reconnect':
          void reconnect(sockets[op.socket]!, op);
          break;
        case 'kill':
          killNode(op.node, op.downMs);
          break;
        case 'storm':
          target.fake.storm({ forMs: op.ms, status: op.status, retryAfterS: 0 });
          break;
        case 'clear':
          void onSocket(sockets[op.socket]!, 'clear', (conn) => {
            follow(conn, chatIds[op.chat]!);
            conn.client.send({ type: 'clear_history', chat_id: chatIds[op.chat]! });
          });
          break;
      }
    }
    await Promise.all([...background]);
    await Promise.all(sockets.map((s) => s.chain));

    // ---- settle: every chat frame answered, every query seen ended
    // Waits while the service makes progress: a frame counts as lost only once the service has gone quiet.
    const quiet = () => Date.now() - lastProgress() > settleTimeoutMs;
    const allUnanswered = () => chatIds.flatMap((chatId) => unanswered(chatId, true).map((f) => ({ chatId, f })));
    while (allUnanswered().length > 0 && !quiet()) await sleep(20);
    for (const { chatId, f } of allUnanswered()) {
      violate(
        `runner: chat frame "${f.content}" (${f.conn.label}) to chat ${chatIds.indexOf(chatId)} never got a user_message ` +
          `(the service sent nothing for the last ${settleTimeoutMs} ms)`,
      );
    }
    const unended = () => {
      const seen = new Set<string>();
      for (const conn of conns) for (const e of conn.client.events) if (e.type === 'user_message' || (e.type === 'processing_state' && e.query_id)) seen.add(qid(e)!);
      const ended = new Set(observer!.client.events.filter(isTerminal).map((e) => qid(e)!));
      return [...seen].filter((q) => !ended.has(q));
    };
    for (let round = 0; round < 2; round++) {
      while (unended().length > 0 && !quiet()) await sleep(50);
      await sleep(500); // a late event of an ended query would show up here (it must not)
    }
    for (const q of unended()) violate(`1: query ${q} never got a terminal event (observer, ${settleTimeoutMs} ms)`);

    // ---- what is stored (no row may still be streaming once every query ended)
    const stored = new Map<string, ChatMessage[]>();
    for (const chatId of chatIds) {
      let messages: ChatMessage[] = [];
      for (let attempt = 0; attempt < 50; attempt++) {
        const res = await fetch(`${nodes[0]!.url}/api/chats/${chatId}/messages`);
        const body = (await res.json()) as unknown;
        if (res.status !== 200 || !Array.isArray(body)) {
          violate(`6: GET /api/chats/${chatId}/messages answered ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
          await sleep(100);
          continue;
        }
        messages = body as ChatMessage[];
        if (!messages.some((m) => m.status === 'streaming')) break;
        await sleep(100);
      }
      stored.set(chatId, messages);
    }

    const records: ConnRecord[] = conns.map((c) => ({
      label: c.label,
      events: c.client.events,
      follows: c.follows,
      replays: c.replays,
      openAtEnd: !c.closed,
    }));
    sampling = false;
    await sampler;
    agentsBeforeClose = agentProcesses(homes).length;
    // Idle agents may all have closed by the end (a short AGENT_IDLE_TIMEOUT_MS): what the run saw counts.
    if (agentsBeforeClose === 0 && mostAgentsSeen === 0) {
      violate('9: no agent process of this service found while it ran: the leftover check would not see one either');
    }
    await Promise.all(conns.map((c) => c.client.close().catch(() => undefined)));
    await target.close();
    serverClosed = true;
    let leftovers = agentProcesses(homes);
    for (let i = 0; i < 20 && leftovers.length > 0; i++) {
      await sleep(250);
      leftovers = agentProcesses(homes);
    }
    if (leftovers.length > 0) violate(`9: agent CLI process(es) left after the server closed: ${leftovers.map((a) => a.pid).join(', ')}`);

    const figures = checkRecords({ conns: records, observer: 'observer', chatIds, stored, violate, allowedFrameErrors: [...allowedErrors] });
    const echoes = new Set(observer.client.events.flatMap((e) => (e.type === 'user_message' ? [`${e.chat_id}\n${e.content}`] : [])));
    let cutOffByReset = 0;
    for (const [chatId, frames] of sent) {
      for (const f of frames) if (f.conn.reset && !echoes.has(`${chatId}\n${f.content}`)) cutOffByReset++;
    }
    await sleep(50);
    process.off('unhandledRejection', onUnhandled);
    return {
      seed,
      operations: plan.length,
      ...figures,
      cutOffByReset,
      reconnects,
      agentsBeforeClose,
      nodes: nodes.length,
      kills,
      nodeLost: observer.client.events.filter((e) => e.type === 'error' && qid(e) !== undefined && e.code === 'node_lost').length,
      agentSamples,
      closingOverlaps,
      longestOrphanMs,
      violations: dedupe(violations),
      durationMs: Date.now() - started,
    };
  } finally {
    process.off('unhandledRejection', onUnhandled);
    sampling = false;
    await sampler;
    if (!serverClosed) {
      await Promise.all([...background]);
      await Promise.all(conns.map((c) => c.client.close().catch(() => undefined)));
      await target.close().catch(() => undefined);
    }
  }
}

function dedupe(list: string[], max = 200): string[] {
  const out = [...new Set(list)];
  return out.length > max ? [...out.slice(0, max), `... and ${out.length - max} more`] : out;
}

// ------------------------------------------------------------------------------------------------ checking

/** A stored row expected from the stream; `partial`: of a query a node loss ended (see `lost` in checkRecords). */
interface Row {
  text: string;
  partial: boolean;
}

/** `got` equals `want`, except that a partial row may be stored as a prefix of its text (same role) or not at all. */
export function rowsMatch(got: string[], want: Row[]): boolean {
  let i = 0;
  for (const row of want) {
    const g = got[i];
    if (g === row.text) i++;
    else if (row.partial && g !== undefined && row.text.startsWith(g) && g.split(': ')[0] === row.text.split(': ')[0] && g.includes(': ')) i++;
    else if (!row.partial) return false;
  }
  return i === got.length;
}

/** What one WebSocket connection did and received. */
export interface ConnRecord {
  label: string;
  /** Every event received, in arrival order. */
  events: ServerEvent[];
  /** chat id -> number of events received before the connection first sent subscribe/chat for it. */
  follows: Map<string, number>;
  /** chat id -> last_seq of its (first) subscription on this connection, when it asked for a replay. */
  replays: Map<string, number>;
  /** Still open when the run ended (so it must have received every later event of the chats it follows). */
  openAtEnd: boolean;
}

export interface CheckInput {
  conns: ConnRecord[];
  /** Label of the connection that followed every chat from before its first event and never disconnected. */
  observer: string;
  chatIds: string[];
  /** Stored messages per chat (GET /api/chats/:id/messages), after every query ended. */
  stored: Map<string, ChatMessage[]>;
  violate: (v: string) => void;
  /** Frame error codes that are not violations (counted in `refused`). */
  allowedFrameErrors?: string[];
}

/** Checks the invariants 1-7 on recorded streams; reports through `violate`, returns the counted figures. */
export function checkRecords({ conns, observer: observerLabel, chatIds, stored, violate, allowedFrameErrors = [] }: CheckInput) {
  const observer = conns.find((c) => c.label === observerLabel);
  if (!observer) throw new Error(`no connection labelled ${observerLabel}`);
  const chatNo = (chatId: string) => `chat ${chatIds.indexOf(chatId)}`;
  const short = (q: string) => q.slice(0, 8);

  // Global truth, from every connection: the chat of each query, the seq of its user_message and of its terminal.
  const queryChat = new Map<string, string>();
  const userSeq = new Map<string, number>();
  const terminalSeq = new Map<string, number>();
  for (const conn of conns) {
    for (const e of conn.events) {
      const q = qid(e);
      const chatId = cid(e);
      if (q === undefined || chatId === undefined) continue;
      const known = queryChat.get(q);
      if (known === undefined) queryChat.set(q, chatId);
      else if (known !== chatId) violate(`4: query ${short(q)} seen in ${chatNo(known)} and ${chatNo(chatId)} (${conn.label})`);
      const seq = seqOf(e);
      if (e.type === 'user_message' && seq !== undefined) userSeq.set(q, seq);
      if (isTerminal(e) && seq !== undefined && conn === observer) terminalSeq.set(q, seq);
    }
  }
  const order = (q: string) => userSeq.get(q) ?? -Infinity;
  // Queries a node loss ended: their partial answer is stored as far as it was checkpointed (STREAM_CHECKPOINT_MS)
  // before the node died, so what is stored of them may be a prefix of what streamed, or nothing.
  const lost = new Set(observer.events.flatMap((e) => (e.type === 'error' && e.code === 'node_lost' && qid(e) ? [qid(e)!] : [])));

  let replays = 0;
  let historyFallbacks = 0;
  let refused = 0;

  for (const conn of conns) {
    const events = conn.events;
    const where = (i: number) => `${conn.label} event #${i}`;

    // 4: chats followed; frame errors
    events.forEach((e, i) => {
      const chatId = cid(e);
      if (e.type === 'error' && qid(e) === undefined) {
        if (allowedFrameErrors.includes(e.code)) {
          refused++;
          return;
        }
        violate(`4: ${where(i)}: unexpected frame error ${e.code} (${e.error})${chatId ? ` on ${chatNo(chatId)}` : ''}`);
        return;
      }
      // chat_updated tells every socket of the user about its chat list (no seq): not a followed chat's stream.
      if (chatId === undefined || e.type === 'chat_updated') return;
      const since = conn.follows.get(chatId);
      if (since === undefined || since > i) violate(`4: ${where(i)}: ${e.type} of ${chatNo(chatId)}, which the socket does not follow`);
      if (!chatIds.includes(chatId)) violate(`4: ${where(i)}: event of unknown chat ${chatId}`);
    });

    for (const chatId of conn.follows.keys()) {
      const mine = events.map((e, i) => ({ e, i })).filter(({ e }) => cid(e) === chatId && seqOf(e) !== undefined);
      // 5 / 7: seq continuity of one subscription (a connection subscribes a chat once, then may re-snapshot)
      const replayFrom = conn.replays.get(chatId);
      let expected: number | undefined; // the next live seq
      let segStart: number | undefined;
      let lastSeq: number | undefined;
      let inReplay = replayFrom !== undefined;
      for (const [k, { e, i }] of mine.entries()) {
        const seq = seqOf(e)!;
        if (k === 0) {
          if (replayFrom !== undefined) {
            if (e.type === 'history') {
              historyFallbacks++;
              inReplay = false;
            } else {
              replays++;
            }
          }
          if (SNAPSHOT.has(e.type)) {
            segStart = seq + 1;
            expected = seq + 1;
          } else if (replayFrom !== undefined) {
            segStart = replayFrom + 1;
            expected = replayFrom + 1;
          } else {
            violate(`5: ${where(i)}: first event of ${chatNo(chatId)} is a live ${e.type}, not the subscription's snapshot`);
            segStart = seq;
            expected = seq;
          }
        }
        if (lastSeq !== undefined) {
          if (SNAPSHOT.has(e.type) ? seq < lastSeq : seq <= lastSeq) {
            violate(`5: ${where(i)}: ${chatNo(chatId)} seq ${seq} (${e.type}) after seq ${lastSeq}`);
          }
        }
        if (SNAPSHOT.has(e.type)) {
          inReplay = false;
          if (expected !== undefined && seq !== expected - 1) {
            violate(`5: ${where(i)}: ${chatNo(chatId)} snapshot ${e.type} at seq ${seq}, but the last event delivered was ${expected - 1}`);
          }
          expected = seq + 1;
        } else {
          if (seq !== expected) {
            violate(
              inReplay
                ? `7: ${where(i)}: replay of ${chatNo(chatId)} after last_seq ${replayFrom}: got seq ${seq}, expected ${expected}`
                : `5: ${where(i)}: gap in ${chatNo(chatId)}: got seq ${seq} (${e.type}), expected ${expected}`,
            );
          }
          expected = seq + 1;
        }
        lastSeq = Math.max(lastSeq ?? seq, seq);
      }
      const segEnd = conn.openAtEnd ? Infinity : (lastSeq ?? -Infinity);
      const covers = (seq: number) => segStart !== undefined && seq >= segStart && seq <= segEnd;

      // 1 / 2 / 3 per query of this chat on this connection
      const byQuery = new Map<string, { e: Ev; i: number }[]>();
      for (const x of mine) {
        const q = qid(x.e);
        if (q === undefined || x.e.type === 'processing_state') continue;
        if (!byQuery.has(q)) byQuery.set(q, []);
        byQuery.get(q)!.push(x);
      }
      const queriesOfChat = [...queryChat.entries()].filter(([, c]) => c === chatId).map(([q]) => q);
      for (const q of queriesOfChat) {
        const list = byQuery.get(q) ?? [];
        const terminals = list.filter(({ e }) => isTerminal(e));
        const t = terminalSeq.get(q);
        if (terminals.length > 1) violate(`1: ${conn.label}: query ${short(q)} (${chatNo(chatId)}) got ${terminals.length} terminal events`);
        else if (terminals.length === 0 && t !== undefined && covers(t)) {
          violate(`1: ${conn.label}: query ${short(q)} (${chatNo(chatId)}) followed through its end (seq ${t}) but got no terminal event`);
        }
        const first = terminals[0];
        if (first) {
          const after = list.filter(({ i }) => i > first.i);
          if (after.length > 0) {
            violate(`2: ${conn.label}: query ${short(q)} (${chatNo(chatId)}): ${after.map(({ e }) => e.type).join(',')} after its ${first.e.type}`);
          }
        }
      }
      let newestStarted = -Infinity;
      let newestUser = -Infinity;
      for (const { e, i } of mine) {
        const q = qid(e);
        if (q === undefined) continue;
        if (e.type === 'processing_state') {
          newestUser = Math.max(newestUser, order(q));
          continue;
        }
        if (e.type === 'text_delta' && order(q) < newestStarted) {
          violate(`3: ${where(i)}: text_delta of query ${short(q)} after the stream_start of a newer query (${chatNo(chatId)})`);
        } else if (e.type !== 'user_message' && order(q) < newestUser) {
          violate(`3: ${where(i)}: ${e.type} of query ${short(q)} after the user_message of a newer query (${chatNo(chatId)})`);
        }
        if (e.type === 'stream_start') newestStarted = Math.max(newestStarted, order(q));
        if (e.type === 'user_message') newestUser = Math.max(newestUser, order(q));
      }
    }
  }

  // 6b: every snapshot matches the stream at its seq. `history` at seq S holds exactly the user messages and the
  // finished (non-empty) answer blocks of events up to S (error rows aside: they are not streamed), and
  // `processing_state` names the query running at S with the text of its block open at S.
  const observerByChat = new Map<string, Ev[]>();
  for (const e of observer.events) {
    const chatId = cid(e);
    if (chatId === undefined || seqOf(e) === undefined || SNAPSHOT.has(e.type)) continue;
    if (!observerByChat.has(chatId)) observerByChat.set(chatId, []);
    observerByChat.get(chatId)!.push(e);
  }
  const stateAt = (chatId: string, at: number) => {
    const upTo = (observerByChat.get(chatId) ?? []).filter((e) => seqOf(e)! <= at);
    const rows: Row[] = [];
    let block: string | undefined;
    let running: string | null = null;
    for (const e of upTo) {
      if (e.type === 'user_message') {
        rows.push({ text: `user: ${e.content}`, partial: false });
        running = e.query_id;
      } else if (e.type === 'stream_start') block = '';
      else if (e.type === 'text_delta') block = (block ?? '') + e.delta;
      else if (e.type === 'stream_end') {
        if (block) rows.push({ text: `assistant: ${block}`, partial: lost.has(qid(e) ?? '') });
        block = undefined;
      } else if (e.type === 'assistant_message') rows.push({ text: `assistant: ${e.content}`, partial: lost.has(qid(e) ?? '') });
      else if (e.type === 'history_cleared') rows.length = 0;
      else if (isTerminal(e) && qid(e) === running) {
        running = null;
        block = undefined;
      }
    }
    return { rows, running, text: block ?? '' };
  };
  let snapshots = 0;
  let midAnswerSnapshots = 0;
  for (const conn of conns) {
    if (conn === observer) continue;
    conn.events.forEach((e, i) => {
      const chatId = cid(e);
      const seq = seqOf(e);
      if (chatId === undefined || seq === undefined) return;
      if (e.type === 'history') {
        const want = stateAt(chatId, seq).rows;
        const got = e.messages.filter((m) => m.status !== 'error').map((m) => `${m.role}: ${m.content}`);
        if (!rowsMatch(got, want)) {
          violate(`6b: ${conn.label} event #${i}: history of ${chatNo(chatId)} at seq ${seq} is ${JSON.stringify(got)}, but the stream up to it gives ${JSON.stringify(want.map((r) => r.text))}`);
        }
      } else if (e.type === 'processing_state') {
        snapshots++;
        if (e.is_processing) midAnswerSnapshots++;
        const want = stateAt(chatId, seq);
        const got = { running: e.is_processing ? e.query_id : null, text: e.streaming_state?.text ?? '' };
        if (got.running !== want.running || (want.running !== null && got.text !== want.text)) {
          violate(`6b: ${conn.label} event #${i}: processing_state of ${chatNo(chatId)} at seq ${seq} is ${JSON.stringify(got)}, but the stream up to it gives ${JSON.stringify({ running: want.running, text: want.text })}`);
        }
      }
    });
  }

  // 6: what the observer saw streamed equals what is stored
  let results = 0;
  let cancelled = 0;
  let errors = 0;
  const queries = new Set<string>();
  for (const chatId of chatIds) {
    const events = observer.events.filter((e) => cid(e) === chatId);
    // clear_history deletes what was stored before it: only the queries after the last one are compared
    const lastClear = events.filter((e) => e.type === 'history_cleared').map((e) => seqOf(e)!).pop() ?? -Infinity;
    const users = events.filter((e) => e.type === 'user_message' && seqOf(e)! > lastClear);
    for (const e of events) if (e.type === 'user_message') queries.add(e.query_id);
    for (const e of events) {
      if (e.type === 'result') results++;
      else if (e.type === 'cancelled') cancelled++;
      else if (e.type === 'error' && qid(e) !== undefined) errors++;
    }
    const messages = stored.get(chatId) ?? [];
    for (const m of messages) {
      if (m.status === 'streaming') violate(`6: ${chatNo(chatId)}: message ${m.id} still 'streaming' after every query ended`);
    }
    const groups: { user: ChatMessage; answers: ChatMessage[] }[] = [];
    for (const m of messages) {
      if (m.role === 'user') groups.push({ user: m, answers: [] });
      else if (groups.length === 0) violate(`6: ${chatNo(chatId)}: assistant message before any user message`);
      else groups[groups.length - 1]!.answers.push(m);
    }
    if (groups.length !== users.length) {
      violate(`6: ${chatNo(chatId)}: ${groups.length} user messages stored but ${users.length} user_message events seen`);
    }
    users.forEach((u, k) => {
      if (u.type !== 'user_message') return;
      const q = u.query_id;
      const list = events.filter((e) => qid(e) === q && e.type !== 'processing_state');
      const end = list.find(isTerminal);
      const group = groups[k];
      if (!group) return;
      const label = `${chatNo(chatId)} query ${short(q)} (#${k}, "${u.content}", ${end?.type ?? 'no end'})`;
      if (group.user.content !== u.content) violate(`6: ${label}: stored user message is "${group.user.content}"`);
      // streamed blocks: each stream_start..stream_end, and whole assistant_messages; empty blocks are not stored
      const blocks: string[] = [];
      let open: string | undefined;
      for (const e of list) {
        if (e.type === 'stream_start') {
          if (open !== undefined) blocks.push(open);
          open = '';
        } else if (e.type === 'text_delta') open = (open ?? '') + e.delta;
        else if (e.type === 'stream_end') {
          if (open !== undefined) blocks.push(open);
          open = undefined;
        } else if (e.type === 'assistant_message') blocks.push(e.content);
      }
      if (open !== undefined) {
        violate(`6: ${label}: a stream_start without stream_end`);
        blocks.push(open);
      }
      const streamed = blocks.filter((b) => b.length > 0);
      const errorRows = group.answers.filter((m) => m.status === 'error');
      const textRows = group.answers.filter((m) => m.status !== 'error');
      if (errorRows.length > 0 && end?.type !== 'error') violate(`6: ${label}: an 'error' message stored for a query that ended ${end?.type}`);
      const allowed = end?.type === 'result' ? ['complete'] : ['complete', 'interrupted'];
      for (const m of textRows) {
        if (!allowed.includes(m.status)) violate(`6: ${label}: stored answer with status ${m.status}`);
      }
      const got = textRows.map((m) => m.content);
      const asRow = (text: string) => `assistant: ${text}`;
      if (!rowsMatch(got.map(asRow), streamed.map((text) => ({ text: asRow(text), partial: lost.has(q) })))) {
        violate(`6: ${label}: streamed ${JSON.stringify(streamed)} but stored ${JSON.stringify(got)}`);
      }
    });
  }
  return { queries: queries.size, results, cancelled, errors, replays, historyFallbacks, refused, snapshots, midAnswerSnapshots };
}
