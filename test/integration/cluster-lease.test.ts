import { afterEach, describe, expect, it } from 'vitest';
import { ChatLeases, type Lease } from '../../src/cluster/chat-lease.js';
import { NodeLiveness } from '../../src/cluster/node-liveness.js';
import { NodeCommands, NodeUnreachableError } from '../../src/cluster/node-commands.js';
import type { FastifyBaseLogger } from 'fastify';
import { openTestRedis, redisAvailable, type TestRedis } from '../helpers/cluster-redis.js';

// Short times so expiry shows within a test; the defaults are 10 s and 3 s.
const LIVENESS = { ttlMs: 600, beatEveryMs: 150 };
const LEASES = { ttlMs: 600, renewEveryMs: 150 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = (): FastifyBaseLogger => {
  const noop = () => {};
  const log = { level: 'silent', fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop, silent: noop };
  return { ...log, child: () => quiet() } as unknown as FastifyBaseLogger;
};

describe.skipIf(!redisAvailable)('node liveness and chat leases (real Redis)', () => {
  const opened: TestRedis[] = [];
  const stoppers: (() => void)[] = [];
  afterEach(async () => {
    for (const stop of stoppers.splice(0)) stop();
    for (const redis of opened.splice(0)) await redis.close();
  });
  const redis = async () => {
    const r = await openTestRedis();
    opened.push(r);
    return r;
  };
  const leases = (r: TestRedis, member: string, lost: { lease: Lease; why: string }[] = []) => {
    const l = new ChatLeases(r, member, (lease, why) => lost.push({ lease, why }), LEASES);
    stoppers.push(() => l.stop());
    return l;
  };
  /** Leases of node-a on a connection of their own, which the test cuts (every command then fails). */
  const cutOffLeases = async () => {
    const r = await redis();
    const cut = await r.open('cut-off');
    const lost: { lease: Lease; why: string }[] = [];
    const a = leases({ ...r, client: cut }, 'node-a:1', lost);
    return { a, cut, lost };
  };

  it('a node that stops renewing is dead after the TTL; one that renews stays alive; a clean stop leaves at once', async () => {
    const r = await redis();
    const a = new NodeLiveness(r, 'node-a', LIVENESS);
    const b = new NodeLiveness(r, 'node-b', LIVENESS);
    const c = new NodeLiveness(r, 'node-c', LIVENESS);
    stoppers.push(() => a.halt(), () => b.halt(), () => c.halt());
    await Promise.all([a.start(), b.start(), c.start()]);
    expect(await a.deadMembers()).toEqual([]);

    b.halt(); // killed: no more renewals, still registered
    await sleep(LIVENESS.ttlMs * 3);
    expect(await a.isAlive(c.member)).toBe(true); // renewed over several TTLs
    expect(await a.isAlive(b.member)).toBe(false);
    expect(await a.deadMembers()).toEqual([b.member]);

    await c.stop();
    expect(await a.isAlive(c.member)).toBe(false);
    expect(await a.deadMembers()).toEqual([b.member]); // c left the registry: nothing to clean up after it

    // One survivor cleans up after b: the others are refused the lock.
    expect(await a.claimCleanup(b.member, 5_000)).toBe(true);
    expect(await c.claimCleanup(b.member, 5_000)).toBe(false);
    await a.forget(b.member);
    expect(await a.deadMembers()).toEqual([]);
  });

  it('a command whose target dies after receiving it fails once the target\'s liveness lapses, long before its timeout', async () => {
    const r = await redis();
    const a = new NodeLiveness(r, 'node-a', LIVENESS);
    const b = new NodeLiveness(r, 'node-b', LIVENESS);
    stoppers.push(() => a.halt(), () => b.halt());
    await Promise.all([a.start(), b.start()]);
    let received = 0;
    // b takes the command and never answers: it was killed while running it.
    const onB = new NodeCommands(r, b.member, () => {
      received++;
      b.halt();
      return new Promise(() => {});
    }, quiet());
    const onA = new NodeCommands(r, a.member, async () => null, quiet(), (member) => a.isAlive(member));
    await Promise.all([onA.start(), onB.start()]);
    stoppers.push(() => void onA.stop(), () => void onB.stop());
    const started = Date.now();
    const failure = await onA.call(b.member, 'snapshot', 'c1', {}, 60_000).catch((err: unknown) => err);
    expect(received).toBe(1);
    expect(failure).toBeInstanceOf(NodeUnreachableError);
    expect((failure as Error).message).toMatch(/was lost before it answered snapshot/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a node restarted under the same name sees its earlier run, and only its own', async () => {
    const r = await redis();
    const first = new NodeLiveness(r, 'node-a', LIVENESS);
    const other = new NodeLiveness(r, 'node-ab', LIVENESS);
    stoppers.push(() => first.halt(), () => other.halt());
    await first.start();
    await other.start();
    first.halt();
    const second = new NodeLiveness(r, 'node-a', LIVENESS);
    stoppers.push(() => second.halt());
    await second.start();
    expect(second.member).not.toBe(first.member);
    expect(await second.earlierRuns()).toEqual([first.member]);
  });

  it('a chat has one holder; tokens grow at every acquisition; a released chat goes to the next node', async () => {
    const r = await redis();
    const a = leases(r, 'node-a:1');
    const b = leases(r, 'node-b:1');
    const first = await a.acquire('chat-1');
    if (!('lease' in first)) throw new Error('a should get the free chat');
    expect(await b.acquire('chat-1')).toEqual({ heldBy: { member: 'node-a:1', token: first.lease.token } });
    // Acquiring again is a renewal: same token.
    expect(await a.acquire('chat-1')).toEqual(first);
    expect(await b.chatsOf('node-a:1')).toEqual(['chat-1']);

    await a.release('chat-1');
    expect(await a.holder('chat-1')).toBeUndefined();
    expect(await b.chatsOf('node-a:1')).toEqual([]);
    const second = await b.acquire('chat-1');
    if (!('lease' in second)) throw new Error('b should get the released chat');
    expect(second.lease.token).toBeGreaterThan(first.lease.token);
  });

  it('renewed leases outlive their TTL; an unrenewed one expires, the next holder gets it and the old one learns it lost it', async () => {
    const r = await redis();
    const lostByA: { lease: Lease; why: string }[] = [];
    const a = leases(r, 'node-a:1', lostByA);
    const b = leases(r, 'node-b:1');
    await a.acquire('kept');
    await a.acquire('dropped');
    a.start();
    await sleep(LEASES.ttlMs * 3);
    expect('heldBy' in (await b.acquire('kept'))).toBe(true);

    // a stalls (no renewals) past the TTL: b takes the chat.
    a.stop();
    await sleep(LEASES.ttlMs + 200);
    const taken = await b.acquire('dropped');
    expect('lease' in taken).toBe(true);
    // a wakes up: its renewal finds both leases gone ('dropped' now b's), and must not extend or remove b's lease.
    await a.renew();
    expect(lostByA.map((l) => [l.lease.chatId, l.why])).toEqual([['kept', 'taken'], ['dropped', 'taken']]);
    expect(a.get('dropped')).toBeUndefined();
    expect((await b.holder('dropped'))?.member).toBe('node-b:1');
    await a.release('dropped'); // not held any more: nothing happens
    expect((await b.holder('dropped'))?.member).toBe('node-b:1');
  });

  it('a node that cannot reach Redis gives up its leases itself before they can expire (self-fencing)', async () => {
    const { a, cut, lost } = await cutOffLeases();
    await a.acquire('chat-1');
    a.start();
    const cutAt = Date.now();
    cut.disconnect(); // every command now fails
    while (lost.length === 0 && Date.now() - cutAt < 5_000) await sleep(20);
    const after = Date.now() - cutAt;
    expect(lost.map((l) => [l.lease.chatId, l.why])).toEqual([['chat-1', 'unrenewed']]);
    // Before the lease can expire in Redis (the last renewal was at most `renewEveryMs` before the cut).
    expect(after).toBeLessThan(LEASES.ttlMs);
    expect(a.chatIds).toEqual([]);
  });

  it('a failed renewal arms the fence for its deadline: the leases are given up then, with no renewal tick to notice', async () => {
    // Not started: no renewal ticks at all, only the renewals this test makes.
    const { a, cut, lost } = await cutOffLeases();
    await a.acquire('chat-1');
    await a.renew();
    const renewedAt = Date.now();
    cut.disconnect();
    await a.renew(); // fails: too early to fence, so it arms the fence for ttl - renewEvery after the last renewal
    expect(lost).toEqual([]);
    while (lost.length === 0 && Date.now() - renewedAt < 5_000) await sleep(10);
    const after = Date.now() - renewedAt;
    expect(lost.map((l) => [l.lease.chatId, l.why])).toEqual([['chat-1', 'unrenewed']]);
    expect(after).toBeGreaterThanOrEqual(LEASES.ttlMs - LEASES.renewEveryMs - 5);
    expect(after).toBeLessThan(LEASES.ttlMs);
    expect(a.chatIds).toEqual([]);
  });

  it('the lease a dead member left is removed only while that member still holds it', async () => {
    const r = await redis();
    const a = leases(r, 'node-a:1');
    const b = leases(r, 'node-b:1');
    await a.acquire('chat-1');
    expect(await b.releaseFor('chat-1', 'node-c:1')).toBe(false);
    expect((await b.holder('chat-1'))?.member).toBe('node-a:1');
    expect(await b.releaseFor('chat-1', 'node-a:1')).toBe(true);
    expect(await b.holder('chat-1')).toBeUndefined();
  });
});
