import { afterEach, describe, expect, it } from 'vitest';
import type { ChatSubscriber } from '../../src/agent/event-log.js';
import { ChatEventFeeds } from '../../src/cluster/chat-event-feeds.js';
import { ChatEventStream, FencedError } from '../../src/cluster/chat-event-stream.js';
import { ChatLeases, type Lease } from '../../src/cluster/chat-lease.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { openTestRedis, redisAvailable, type TestRedis } from '../helpers/cluster-redis.js';

const SETTINGS = { maxEvents: 2_000, ttlMs: 60_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A subscriber that records what it got. */
class Recorder implements ChatSubscriber {
  events: ServerEvent[] = [];
  send(event: ServerEvent): void {
    this.events.push(event);
  }
  get seqs(): number[] {
    return this.events.map((e) => (e as { seq: number }).seq);
  }
  async waitFor(count: number, ms = 5_000): Promise<void> {
    const until = Date.now() + ms;
    while (this.events.length < count && Date.now() < until) await sleep(10);
    expect(this.events.length).toBe(count);
  }
}

const delta = (chatId: string, seq: number, text = `d${seq}`): ServerEvent =>
  ({ type: 'text_delta', chat_id: chatId, seq, query_id: 'q1', delta: text }) as ServerEvent;

describe.skipIf(!redisAvailable)('chat event streams (real Redis)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const setup = async () => {
    const redis = await openTestRedis();
    cleanups.push(() => redis.close());
    const stream = new ChatEventStream(redis, { ...SETTINGS, maxEvents: 50 });
    const leases = (member: string, ttlMs = 10_000) => new ChatLeases(redis, member, () => {}, { ttlMs, renewEveryMs: 150 });
    const acquire = async (l: ChatLeases, chatId: string): Promise<Lease> => {
      const got = await l.acquire(chatId);
      if (!('lease' in got)) throw new Error(`${chatId} is held by ${got.heldBy.member}`);
      return got.lease;
    };
    const publishWith = (s: ChatEventStream, lease: Lease, seqs: number[]) =>
      Promise.all(seqs.map((seq) => {
        const event = delta(lease.chatId, seq);
        return s.publish(lease, seq, event, JSON.stringify(event));
      }));
    const full = new ChatEventStream(redis, SETTINGS);
    const publish = (lease: Lease, seqs: number[]) => publishWith(full, lease, seqs);
    const publishTrimmed = (lease: Lease, seqs: number[]) => publishWith(stream, lease, seqs);
    const feeds = async (r: TestRedis = redis, onLagged?: (chatId: string, subscribers: ChatSubscriber[]) => void) => {
      const f = new ChatEventFeeds(
        r,
        new ChatEventStream(r, SETTINGS),
        (err) => {
          throw err;
        },
        onLagged,
      );
      await f.start();
      cleanups.push(() => f.stop());
      return f;
    };
    return { redis, stream, leases, acquire, publish, publishTrimmed, feeds };
  };

  it('only the lease holder publishes: a stale owner is refused once another node took the chat', async () => {
    const { stream, leases, acquire, publish } = await setup();
    const a = leases('node-a:1', 600);
    const b = leases('node-b:1', 600);
    const leaseA = await acquire(a, 'c1');
    await publish(leaseA, [101, 102, 103]);
    expect(await stream.lastSeq('c1')).toBe(103);

    // a stalls past its lease; b takes the chat and continues the numbering.
    await sleep(700);
    const leaseB = await acquire(b, 'c1');
    expect(leaseB.token).toBeGreaterThan(leaseA.token);
    await expect(publish(leaseA, [104])).rejects.toBeInstanceOf(FencedError);
    await publish(leaseB, [(await stream.lastSeq('c1'))! + 1]);
    expect((await stream.since('c1', 100))!.map((e) => e.seq)).toEqual([101, 102, 103, 104]);
    const [e] = (await stream.since('c1', 103))!;
    expect(e!.event).toEqual(delta('c1', 104));
  });

  it('the stream is in seq order whoever publishes: a seq not above the last is refused', async () => {
    const { stream, leases, acquire, publish } = await setup();
    const lease = await acquire(leases('node-a:1'), 'c1');
    await publish(lease, [200]);
    await expect(publish(lease, [150])).rejects.toThrow(/equal or smaller/);
    expect((await stream.since('c1', 199))!.map((e) => e.seq)).toEqual([200]);
    expect(await stream.since('c1', 198)).toBeUndefined();
  });

  it('replays exactly the events after last_seq, and nothing when they are no longer all kept', async () => {
    const { stream, leases, acquire, publishTrimmed: publish } = await setup();
    const lease = await acquire(leases('node-a:1'), 'c1');
    expect(await stream.since('c1', 5)).toBeUndefined(); // nothing published yet
    const seqs = Array.from({ length: 1_000 }, (_, i) => 1_000 + i);
    await publish(lease, seqs);
    // MAXLEN ~ 50: the oldest are gone, the last 50 at least are kept.
    const kept = (await stream.since('c1', 1_949))!;
    expect(kept.map((e) => e.seq)).toEqual(seqs.slice(950));
    expect(await stream.since('c1', 1_000)).toBeUndefined();
    expect(await stream.since('c1', 1_999)).toEqual([]);
  });

  it("records the query the owner runs and whether a text block is open, until the query's terminal event", async () => {
    const { stream, leases, acquire } = await setup();
    const lease = await acquire(leases('node-a:1'), 'c1');
    const send = (seq: number, body: Record<string, unknown>) => {
      const event = { chat_id: 'c1', seq, ...body } as ServerEvent;
      return stream.publish(lease, seq, event, JSON.stringify(event));
    };
    await send(1, { type: 'user_message', query_id: 'q1', content: 'hi', message_id: 'm1' });
    expect(await stream.running('c1')).toEqual({ queryId: 'q1', streamOpen: false });
    await send(2, { type: 'stream_start', query_id: 'q1' });
    expect(await stream.running('c1')).toEqual({ queryId: 'q1', streamOpen: true });
    await send(3, { type: 'stream_end', query_id: 'q1' });
    expect(await stream.running('c1')).toEqual({ queryId: 'q1', streamOpen: false });
    await send(4, { type: 'result', query_id: 'q1', success: true, cost: 0, duration: 1 });
    expect(await stream.running('c1')).toBeUndefined();
  });

  it("every node's subscribers get every event once, in order, with the same seqs; a late subscriber catches up first", async () => {
    const { redis, leases, acquire, publish, feeds } = await setup();
    const other = await openTestRedis(redis.prefix); // a second node: its own connections, same keys
    cleanups.push(() => other.close());
    const [nodeA, nodeB] = [await feeds(), await feeds(other)];
    const lease = await acquire(leases('node-a:1'), 'c1');
    const [onA, onB] = [new Recorder(), new Recorder()];
    await nodeA.follow('c1', onA, 0);
    await nodeB.follow('c1', onB, 0);
    const seqs = Array.from({ length: 300 }, (_, i) => 10_000 + i);
    const burst = publish(lease, seqs.slice(0, 150));
    const late = new Recorder();
    await nodeB.follow('c1', late, 10_049); // joins while the burst is being published
    await burst;
    await publish(lease, seqs.slice(150));
    await onA.waitFor(300);
    await onB.waitFor(300);
    await late.waitFor(250);
    expect(onA.seqs).toEqual(seqs);
    expect(onB.seqs).toEqual(seqs);
    expect(late.seqs).toEqual(seqs.slice(50));
    expect(onB.events).toEqual(onA.events);

    nodeB.unfollow('c1', onB);
    await publish(lease, [20_000]);
    await onA.waitFor(301);
    await late.waitFor(251);
    expect(onB.events.length).toBe(300);
  });

  it('an owner that numbered from a seq and published nothing passes that seq on: the next owner goes on from it', async () => {
    const { stream, leases, acquire, publish } = await setup();
    expect(await stream.lastSeq('c1')).toBeUndefined();
    // a took the chat and sent a subscriber its state at 5000, then died before any event.
    await stream.numberingFrom('c1', 5_000);
    expect(await stream.lastSeq('c1')).toBe(5_000);
    const b = await acquire(leases('node-b:1'), 'c1');
    await publish(b, [5_001, 5_002]);
    expect(await stream.lastSeq('c1')).toBe(5_002);
  });

  it('a follower sent the chat\'s state again gets every event before it once, then the state, then what follows', async () => {
    const { leases, acquire, publish, feeds } = await setup();
    const node = await feeds();
    const lease = await acquire(leases('node-a:1'), 'c1');
    await publish(lease, [1, 2, 3]);
    const rec = new Recorder();
    await node.follow('c1', rec, 0);
    await publish(lease, [4, 5]);
    const state = { type: 'processing_state', chat_id: 'c1', seq: 5 } as unknown as ServerEvent;
    expect(await node.resync('c1', rec, 5, () => rec.send(state))).toBe(true);
    await publish(lease, [6]);
    await rec.waitFor(7);
    expect(rec.events.map((e) => (e.type === 'processing_state' ? 'state' : (e as { seq: number }).seq))).toEqual([1, 2, 3, 4, 5, 'state', 6]);
    expect(await node.resync('c1', new Recorder(), 6, () => {})).toBe(false);
  });

  it('a chat followed while the reader waits on other chats gets its live events at once', async () => {
    const { leases, acquire, publish, feeds } = await setup();
    const node = await feeds();
    const l = leases('node-a:1');
    const [busy, quiet] = [await acquire(l, 'busy'), await acquire(l, 'quiet')];
    const onBusy = new Recorder();
    await node.follow('busy', onBusy, 0);
    await sleep(100); // the reader is now blocked on 'busy' alone
    const onQuiet = new Recorder();
    await node.follow('quiet', onQuiet, 0);
    await sleep(100);
    const sentAt = Date.now();
    await publish(quiet, [5]);
    await onQuiet.waitFor(1, 1_000);
    expect(Date.now() - sentAt).toBeLessThan(500);
    await publish(busy, [7]);
    await onBusy.waitFor(1);
  });

  it('a subscriber joining behind the trimmed part of the stream is handed back for a full state', async () => {
    const { redis, leases, acquire, publish, publishTrimmed, feeds } = await setup();
    const lagged: [string, ChatSubscriber[]][] = [];
    const node = await feeds(redis, (chatId, subscribers) => lagged.push([chatId, subscribers]));
    const lease = await acquire(leases('node-a:1'), 'c1');
    await publish(lease, [1, 2, 3]);
    const early = new Recorder();
    await node.follow('c1', early, 0);
    expect(early.seqs).toEqual([1, 2, 3]);
    // A follower whose reader falls behind the trim is handed back too (what the reader gets to read first depends on
    // timing): this one stops following before the burst, so only the joiner below can be handed back.
    node.unfollow('c1', early);
    await publishTrimmed(lease, Array.from({ length: 1_000 }, (_, i) => 4 + i));
    const behind = new Recorder();
    await node.follow('c1', behind, 3);
    expect(lagged).toEqual([['c1', [behind]]]);
    expect(node.has('c1', behind)).toBe(false);
    expect(behind.events).toEqual([]);
  });
});
