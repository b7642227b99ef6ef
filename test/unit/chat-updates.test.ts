import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ChatUpdates, type ChatListListener, type ChatListUpdate } from '../../src/chats/chat-updates.js';
import type { Chat } from '../../src/protocol/chat.js';

const chat = (id: string, title: string) => ({ id, title }) as unknown as Chat;

function socket(ownerId: string | null) {
  const writes: ChatListUpdate[][] = [];
  const listener: ChatListListener = { ownerId, sendChatUpdates: (updates) => writes.push([...updates]) };
  return { listener, writes, frames: () => writes.flat().map((u) => JSON.parse(u.json) as { chat_id: string; change: string; chat: { title: string } | null }) };
}

describe('ChatUpdates', () => {
  it("sends a turn's updates to each of the owner's sockets in one write, each serialized once", async () => {
    const updates = new ChatUpdates();
    const [a, b, other] = [socket('u1'), socket('u1'), socket('u2')];
    for (const s of [a, b, other]) updates.add(s.listener);
    updates.publish('u1', 'created', chat('c1', 'one'));
    updates.publish('u1', 'updated', chat('c2', 'two'));
    expect(a.writes).toEqual([]);
    await nextTurn();
    expect(a.writes).toHaveLength(1);
    expect(a.frames().map((f) => [f.chat_id, f.change])).toEqual([['c1', 'created'], ['c2', 'updated']]);
    expect(b.writes[0]![0]!.json).toBe(a.writes[0]![0]!.json);
    expect(other.writes).toEqual([]);
  });

  it("keeps only the last waiting update of a chat, never merging its creation or deletion away", async () => {
    const updates = new ChatUpdates();
    const s = socket(null);
    updates.add(s.listener);
    updates.publish(null, 'created', chat('c1', 'New chat'));
    updates.publish(null, 'updated', chat('c1', 'first title'));
    updates.publish(null, 'updated', chat('c2', 'other'));
    updates.publish(null, 'updated', chat('c1', 'second title'));
    updates.publish(null, 'deleted', null, 'c2');
    await nextTurn();
    expect(s.frames().map((f) => [f.chat_id, f.change, f.chat?.title ?? null])).toEqual([
      ['c1', 'created', 'New chat'],
      ['c1', 'updated', 'second title'],
      ['c2', 'updated', 'other'],
      ['c2', 'deleted', null],
    ]);
  });

  it('sends nothing to a socket removed before the end of the turn, nor for an owner without sockets', async () => {
    const updates = new ChatUpdates();
    const s = socket('u1');
    updates.add(s.listener);
    updates.publish('u1', 'updated', chat('c1', 'x'));
    updates.publish('u3', 'updated', chat('c9', 'nobody listens'));
    updates.remove(s.listener);
    await nextTurn();
    expect(s.writes).toEqual([]);
  });
});
