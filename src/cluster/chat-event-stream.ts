import type { ServerEvent } from '../protocol/ws.js';
import type { Lease } from './chat-lease.js';
import { LuaScript, type RedisAccess } from './redis-access.js';

export interface EventStreamSettings {
  /** Entries a chat's stream keeps (approximately: Redis trims whole blocks) for replay (REPLAY_BUFFER_EVENTS). */
  maxEvents: number;
  /** A stream with no new event for this long is removed; a subscriber then gets the chat's full state. */
  ttlMs: number;
}

export const DEFAULT_STREAM_TTL_MS = 24 * 60 * 60 * 1000;

/** One entry of a chat's stream: the event as every node's subscribers get it. */
export interface StreamedEvent {
  seq: number;
  event: ServerEvent;
  json: string;
}

/** The query a chat's owner is running, as its stream says (for whoever ends it when the owner is lost). */
export interface RunningQuery {
  queryId: string;
  /** A text block was started and not ended. */
  streamOpen: boolean;
}

/** Raised when the publisher's lease is no longer in Redis: it must stop acting for the chat. */
export class FencedError extends Error {
  constructor(readonly chatId: string) {
    super(`chat ${chatId}: lease lost, event refused`);
    this.name = 'FencedError';
  }
}

/**
 * KEYS: lease, stream, running. ARGV: lease value, seq, json, max events, ttl, mark ('' | start | end | open |
 * close), query id. Appends the event as entry `<seq>-0` only while the lease holds exactly the publisher's value;
 * Redis refuses an id not above the stream's last one, so the stream is in `seq` order whoever publishes.
 */
const PUBLISH = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED chat lease not held')
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], ARGV[2] .. '-0', 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local mark = ARGV[6]
if mark == 'start' then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'query', ARGV[7], 'stream', '0')
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
elseif mark == 'end' then
  if redis.call('HGET', KEYS[3], 'query') == ARGV[7] then redis.call('DEL', KEYS[3]) end
elseif mark == 'open' or mark == 'close' then
  if redis.call('HGET', KEYS[3], 'query') == ARGV[7] then
    redis.call('HSET', KEYS[3], 'stream', mark == 'open' and '1' or '0')
  end
end
return 1
`);

const TERMINAL_TYPES = new Set(['result', 'cancelled', 'error']);

/** What the publish script records of an event about the running query. */
function markOf(event: ServerEvent): { mark: string; queryId: string } {
  const queryId = 'query_id' in event && typeof event.query_id === 'string' ? event.query_id : '';
  if (!queryId) return { mark: '', queryId };
  if (event.type === 'user_message' || event.type === 'answer_retried') return { mark: 'start', queryId };
  if (TERMINAL_TYPES.has(event.type)) return { mark: 'end', queryId };
  if (event.type === 'stream_start') return { mark: 'open', queryId };
  if (event.type === 'stream_end') return { mark: 'close', queryId };
  return { mark: '', queryId };
}

const entryId = (seq: number): string => `${seq}-0`;
export const seqOf = (id: string): number => Number(id.slice(0, id.indexOf('-')));

/** Stream entries as ioredis returns them: [id, [field, value, ...]]. */
export type RawEntry = [string, string[]];

export function parseEntry([id, fields]: RawEntry): StreamedEvent {
  const json = fields[fields.indexOf('e') + 1] ?? 'null';
  return { seq: seqOf(id), event: JSON.parse(json) as ServerEvent, json };
}

/**
 * A chat's events in Redis: `chat:<id>:events`, one stream entry per event with id `<seq>-0`, written by the chat's
 * owner under its lease (fenced), read by every node for fan-out and replay; `chat:<id>:running` names the query
 * the owner runs, so that a survivor can end it if the owner is lost.
 */
export class ChatEventStream {
  constructor(
    private readonly redis: RedisAccess,
    private readonly settings: EventStreamSettings,
  ) {}

  key(chatId: string): string {
    return this.redis.key('chat', chatId, 'events');
  }

  /**
   * Appends the event (numbered `seq` by the owner) to the chat's stream, guarded by `lease`. Commands on one
   * connection run in the order sent, so events published one after another without waiting keep their order.
   * Rejects with FencedError when the lease is no longer this one.
   */
  async publish(lease: Lease, seq: number, event: ServerEvent, json: string): Promise<void> {
    const { mark, queryId } = markOf(event);
    const { chatId } = lease;
    try {
      await PUBLISH.run(
        this.redis.client,
        [this.redis.key('chat', chatId, 'lease'), this.key(chatId), this.runningKey(chatId)],
        [lease.value, seq, json, this.settings.maxEvents, this.settings.ttlMs, mark, queryId],
      );
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('FENCED')) throw new FencedError(chatId);
      throw err;
    }
  }

  /**
   * The highest seq used for the chat: its stream's last entry, or where an owner that published nothing yet began
   * numbering (its subscribers were sent that seq with the chat's state); none kept: undefined. A new owner numbers
   * on from it.
   */
  async lastSeq(chatId: string): Promise<number | undefined> {
    const [[, entries], [, start]] = (await this.redis.client
      .multi()
      .xrevrange(this.key(chatId), '+', '-', 'COUNT', 1)
      .get(this.startKey(chatId))
      .exec()) as [[Error | null, RawEntry[]], [Error | null, string | null]];
    const last = entries[0] ? seqOf(entries[0][0]) : undefined;
    if (start === null) return last;
    return Math.max(last ?? 0, Number(start));
  }

  /**
   * Records that a new owner numbers the chat's events from `seq` on. Before its first event the stream does not
   * show it, and an owner lost before publishing would otherwise leave its successor to start elsewhere: a socket
   * that got the chat's state at `seq` would then see a gap.
   */
  async numberingFrom(chatId: string, seq: number): Promise<void> {
    await this.redis.client.set(this.startKey(chatId), String(seq), 'PX', this.settings.ttlMs);
  }

  /**
   * The events after `afterSeq`, or undefined when the stream no longer holds all of them (trimmed past it, expired,
   * never published): the caller then sends the chat's full state, as the single-node event log does.
   */
  async since(chatId: string, afterSeq: number): Promise<StreamedEvent[] | undefined> {
    const key = this.key(chatId);
    const [[, oldest], [, after]] = (await this.redis.client
      .multi()
      .xrange(key, '-', '+', 'COUNT', 1)
      .xrange(key, `(${entryId(afterSeq)}`, '+')
      .exec()) as [[Error | null, RawEntry[]], [Error | null, RawEntry[]]];
    const first = oldest[0];
    // The stream starts at or right after `afterSeq`: one owner numbers consecutively, and a chat that moves may
    // jump ahead but then the stream holds earlier entries (a trimmed or expired stream starts later).
    if (!first || seqOf(first[0]) > afterSeq + 1) return undefined;
    return after.map(parseEntry);
  }

  /**
   * Whether entries after `seq` were trimmed from the chat's stream: some entries were trimmed (Redis counts every
   * entry added) and the oldest left is not the one right after `seq`.
   */
  async trimmedAfter(chatId: string, seq: number): Promise<boolean> {
    const info = (await this.redis.client.xinfo('STREAM', this.key(chatId)).catch(() => [])) as unknown[];
    const field = (name: string) => info[info.indexOf(name) + 1];
    const first = field('first-entry') as RawEntry | null | undefined;
    if (!first) return false;
    return Number(field('entries-added')) > Number(field('length')) && seqOf(first[0]) > seq + 1;
  }

  /** The query the chat's stream says is running (started, no terminal event yet). */
  async running(chatId: string): Promise<RunningQuery | undefined> {
    const marks = await this.redis.client.hgetall(this.runningKey(chatId));
    return marks.query ? { queryId: marks.query, streamOpen: marks.stream === '1' } : undefined;
  }

  private startKey(chatId: string): string {
    return this.redis.key('chat', chatId, 'seq-start');
  }

  private runningKey(chatId: string): string {
    return this.redis.key('chat', chatId, 'running');
  }
}
