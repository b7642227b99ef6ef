import type { Redis } from 'ioredis';
import type { ChatSubscriber } from '../agent/event-log.js';
import { Serial } from '../lib/serial.js';
import { parseEntry, seqOf, type ChatEventStream, type RawEntry, type StreamedEvent } from './chat-event-stream.js';
import type { RedisAccess } from './redis-access.js';

/** Entries read per XREAD call at most (one call serves every chat of the node). */
const READ_BATCH = 1_000;
/** An XREAD returns after this even without events: the loop then notices a stop. */
const BLOCK_MS = 5_000;
/** How often a wake-up is repeated while the reader has not picked up a change (the first may miss the XREAD). */
const WAKE_RETRY_MS = 25;

/** A local subscriber of one chat and the last seq it was given. */
interface Follower {
  subscriber: ChatSubscriber;
  after: number;
}

interface Feed {
  chatId: string;
  key: string;
  followers: Map<ChatSubscriber, Follower>;
  /** The stream entry id the reader continues after. */
  cursor: string;
  /** Catching a follower up and handing out what the reader read run one after another. */
  serial: Serial;
}

/**
 * This node's readers of chat streams: every chat one of its sockets follows is read with one `XREAD BLOCK` on a
 * connection of its own, and each entry is handed to the chat's local subscribers. A subscriber joins at a seq
 * (the end of the snapshot or replay it was sent): the stream's entries after it are read at once (XRANGE), then
 * the live ones, each subscriber getting every event with a higher seq than the last it got, once.
 *
 * The blocking read is restarted (CLIENT UNBLOCK) whenever the set of chats changes.
 */
export class ChatEventFeeds {
  private readonly feeds = new Map<string, Feed>();
  private readonly byKey = new Map<string, Feed>();
  private reader: Redis | undefined;
  private readerId: number | undefined;
  private stopped = false;
  /** Changes of the chat set, and the last one the reader's current XREAD includes. */
  private changes = 0;
  private readingChanges = 0;
  private blocked = false;
  private idle: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisAccess,
    private readonly stream: ChatEventStream,
    private readonly onError: (err: unknown, what: string) => void,
    /**
     * The reader fell so far behind that the stream was trimmed past it: these subscribers stopped following the
     * chat and need its full state again (what the single-node event log does for a replay it cannot serve).
     */
    private readonly onLagged: (chatId: string, subscribers: ChatSubscriber[]) => void = () => {},
  ) {}

  async start(): Promise<void> {
    this.reader = await this.redis.open('chat-event-reader');
    this.readerId = Number(await this.reader.client('ID'));
    this.loop = this.read();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.changed();
    await this.loop;
  }

  /** Chats with local subscribers. */
  get chatIds(): string[] {
    return [...this.feeds.keys()];
  }

  has(chatId: string, subscriber: ChatSubscriber): boolean {
    return this.feeds.get(chatId)?.followers.has(subscriber) ?? false;
  }

  /**
   * Delivers the chat's events after `afterSeq` to `subscriber`: those already in the stream at once, then live ones.
   * A subscriber that follows already just continues where it is.
   */
  follow(chatId: string, subscriber: ChatSubscriber, afterSeq: number): Promise<void> {
    let feed = this.feeds.get(chatId);
    if (!feed) {
      const key = this.stream.key(chatId);
      feed = { chatId, key, followers: new Map(), cursor: `${afterSeq}-0`, serial: new Serial() };
      this.feeds.set(chatId, feed);
      this.byKey.set(key, feed);
      this.changed();
    }
    const joining = feed;
    return joining.serial.run(async () => {
      if (joining.followers.has(subscriber)) return;
      const follower: Follower = { subscriber, after: afterSeq };
      joining.followers.set(subscriber, follower);
      const events = ((await this.redis.client.xrange(joining.key, `(${afterSeq}-0`, '+')) as RawEntry[]).map(parseEntry);
      if (events[0] && events[0].seq > afterSeq + 1 && (await this.stream.trimmedAfter(chatId, afterSeq))) {
        this.unfollow(chatId, subscriber);
        return this.onLagged(chatId, [subscriber]);
      }
      this.deliver(joining, events, [follower]);
    });
  }

  /**
   * For a subscriber that follows the chat already and is sent the chat's state at `seq` again: it gets, first, the
   * events up to `seq` it has not had yet, then `sendState()`, and from then on the events after `seq`, in order with
   * live delivery. False (nothing done) if it does not follow the chat.
   */
  resync(chatId: string, subscriber: ChatSubscriber, seq: number, sendState: () => void): Promise<boolean> {
    const feed = this.feeds.get(chatId);
    if (!feed?.followers.has(subscriber)) return Promise.resolve(false);
    return feed.serial.run(async () => {
      const follower = feed.followers.get(subscriber);
      if (!follower) return false;
      if (follower.after < seq) {
        const entries = (await this.redis.client.xrange(feed.key, `(${follower.after}-0`, `${seq}-0`)) as RawEntry[];
        this.deliver(feed, entries.map(parseEntry), [follower]);
      }
      sendState();
      follower.after = Math.max(follower.after, seq);
      return true;
    });
  }

  unfollow(chatId: string, subscriber: ChatSubscriber): void {
    const feed = this.feeds.get(chatId);
    if (!feed?.followers.delete(subscriber) || feed.followers.size > 0) return;
    this.feeds.delete(chatId);
    this.byKey.delete(feed.key);
    this.changed();
  }

  private deliver(feed: Feed, events: StreamedEvent[], followers: Iterable<Follower> = feed.followers.values()): void {
    for (const follower of followers) {
      for (const { seq, event, json } of events) {
        if (seq <= follower.after) continue;
        follower.after = seq;
        try {
          follower.subscriber.send(event, json);
        } catch (err) {
          this.onError(err, 'send an event to a subscriber');
        }
      }
    }
  }

  private lagged(feed: Feed): void {
    const subscribers = [...feed.followers.keys()];
    if (subscribers.length === 0) return;
    for (const subscriber of subscribers) this.unfollow(feed.chatId, subscriber);
    this.onLagged(feed.chatId, subscribers);
  }

  private changed(): void {
    this.changes++;
    this.wake();
  }

  /** Gets the reader to start a new XREAD (with the current chats), repeating until it has. */
  private wake(): void {
    this.idle?.();
    if (!this.blocked || this.readerId === undefined) return;
    const wanted = this.changes;
    const unblock = async () => {
      for (let i = 0; i < 200 && this.blocked && this.readingChanges < wanted; i++) {
        await this.redis.client.client('UNBLOCK', this.readerId!);
        await new Promise((r) => setTimeout(r, WAKE_RETRY_MS));
      }
    };
    unblock().catch((err: unknown) => this.onError(err, 'wake the chat stream reader'));
  }

  private async read(): Promise<void> {
    const reader = this.reader!;
    while (!this.stopped) {
      const feeds = [...this.feeds.values()];
      if (feeds.length === 0) {
        await new Promise<void>((resolve) => (this.idle = resolve));
        this.idle = undefined;
        continue;
      }
      this.readingChanges = this.changes;
      let result: [string, RawEntry[]][] | null;
      try {
        this.blocked = true;
        result = (await reader.xread(
          'COUNT',
          READ_BATCH,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          ...feeds.map((f) => f.key),
          ...feeds.map((f) => f.cursor),
        )) as [string, RawEntry[]][] | null;
      } catch (err) {
        if (this.stopped) break;
        this.onError(err, 'read chat streams');
        await new Promise((r) => setTimeout(r, 500));
        continue;
      } finally {
        this.blocked = false;
      }
      for (const [key, entries] of result ?? []) {
        const feed = this.byKey.get(key);
        if (!feed || entries.length === 0) continue;
        const readAfter = seqOf(feed.cursor);
        feed.cursor = entries[entries.length - 1]![0];
        const events = entries.map(parseEntry);
        void feed.serial.run(async () => {
          // One owner numbers consecutively: a jump is a new owner's, or entries trimmed before they were read.
          if (events[0]!.seq > readAfter + 1 && (await this.stream.trimmedAfter(feed.chatId, readAfter))) return this.lagged(feed);
          this.deliver(feed, events);
        });
      }
    }
  }
}
