import { describe, expect, it } from 'vitest';
import type { HistoryMessage } from '../../src/protocol/chat.js';
import type { ClientFrame } from '../../src/protocol/ws.js';
import { notInHistory, Outbox, RESEND_GRACE_MS, type PendingMessage } from '../../web/src/outbox.js';

/** The web client's outbox: which sent messages count as received after a reconnect, and what is sent again. */
const CHAT = '0b8f1c2e-4d7a-4c51-9f0e-2a6b3c4d5e6f';

const user = (id: string, content: string): HistoryMessage => ({
  id,
  chat_id: CHAT,
  role: 'user',
  content,
  timestamp: '2026-01-01T00:00:00.000Z',
  images: null,
  status: 'complete',
});
const pending = (id: string, content: string, after: string | null | undefined, sentOn: number | null = 1): PendingMessage => ({
  id,
  clientId: `client-${id}`,
  content,
  images: [],
  sentOn,
  after,
});

describe('web client outbox', () => {
  it('counts a message as received only when a user message with its text follows the one it was sent after', () => {
    // "ok" was said before; the new "ok" is not stored: an older copy does not settle it.
    const history = [user('u1', 'ok'), user('u2', 'first')];
    expect(notInHistory([pending('p1', 'ok', 'u2')], history).map((p) => p.id)).toEqual(['p1']);
    // Stored after its baseline: received.
    expect(notInHistory([pending('p1', 'ok', 'u2')], [...history, user('u3', 'ok')])).toEqual([]);
    // In order: the second of two equal messages is matched to a second copy only.
    const two = [pending('p1', 'ok', 'u2'), pending('p2', 'ok', 'u2')];
    expect(notInHistory(two, [...history, user('u3', 'ok')]).map((p) => p.id)).toEqual(['p2']);
    // Messages never sent are never matched.
    expect(notInHistory([pending('p1', 'first', null, null)], history).map((p) => p.id)).toEqual(['p1']);
  });

  it('after a reconnect sends again, once and in order, what the snapshot does not hold, behind which new messages queue', () => {
    const frames: ClientFrame[] = [];
    const timers: (() => void)[] = [];
    let open = true;
    const outbox = new Outbox({
      send: (frame) => open && frames.push(frame) > 0,
      chatFrame: (chatId, content) => ({ type: 'chat', chat_id: chatId, content }),
      changed: () => undefined,
      setTimeout: (fn, ms) => {
        expect(ms).toBe(RESEND_GRACE_MS);
        timers.push(fn);
      },
    });
    outbox.reconnected();
    outbox.snapshot(CHAT, [user('u1', 'before')]);
    expect(outbox.send(CHAT, 'a', [], 'u1')).toBe(true);
    expect(outbox.send(CHAT, 'b', [], 'u1')).toBe(true);
    expect(outbox.send(CHAT, 'c', [], 'u1')).toBe(true);
    expect(outbox.accept(CHAT, 'a')).toEqual([]);
    expect(outbox.pending(CHAT).map((p) => p.content)).toEqual(['b', 'c']);

    // The connection drops; the service had stored b, not c.
    outbox.reconnected();
    expect(outbox.needsSnapshot(CHAT)).toBe(true);
    frames.length = 0;
    expect(outbox.send(CHAT, 'd', [], 'u1')).toBe(true); // queued behind the resend
    outbox.snapshot(CHAT, [user('u1', 'before'), user('u2', 'a'), user('u3', 'b')]);
    expect(outbox.pending(CHAT).map((p) => p.content)).toEqual(['c', 'd']);
    expect(frames).toEqual([]);
    timers.shift()!();
    expect(frames.map((f) => f.type === 'chat' && f.content)).toEqual(['c', 'd']);
    expect(outbox.needsSnapshot(CHAT)).toBe(false);

    // A refusal of d (nothing stored) drops d only after c's echo; a second resend timer does nothing.
    outbox.accept(CHAT, 'c');
    outbox.refused(CHAT);
    expect(outbox.pending(CHAT)).toEqual([]);
    expect(timers).toEqual([]);
  });

  it('sends every copy of a message with the same client_id, and an echo settles the message its client_id names', () => {
    const frames: ClientFrame[] = [];
    const timers: (() => void)[] = [];
    const outbox = new Outbox({
      send: (frame) => frames.push(frame) > 0,
      chatFrame: (chatId, content, _images, clientId) => ({ type: 'chat', chat_id: chatId, content, client_id: clientId }),
      changed: () => undefined,
      setTimeout: (fn) => timers.push(fn),
    });
    outbox.reconnected();
    outbox.snapshot(CHAT, []);
    outbox.send(CHAT, 'yes', [], null);
    outbox.send(CHAT, 'yes', [], null);
    const [first, second] = outbox.pending(CHAT);
    expect(first!.clientId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(first!.clientId).not.toBe(second!.clientId);
    // The second one's echo (same text) settles the second one, not the older first.
    outbox.accept(CHAT, 'yes', second!.clientId);
    expect(outbox.pending(CHAT).map((p) => p.id)).toEqual([first!.id]);
    // Lost with the connection: sent again with the id it had.
    outbox.reconnected();
    outbox.snapshot(CHAT, []);
    timers.shift()!();
    const copies = frames.filter((f) => f.type === 'chat' && f.client_id === first!.clientId);
    expect(copies).toHaveLength(2);
  });

  it('settles a message whose echo arrives during the grace period instead of sending it twice', () => {
    const frames: ClientFrame[] = [];
    const timers: (() => void)[] = [];
    const outbox = new Outbox({
      send: (frame) => frames.push(frame) > 0,
      chatFrame: (chatId, content) => ({ type: 'chat', chat_id: chatId, content }),
      changed: () => undefined,
      setTimeout: (fn) => timers.push(fn),
    });
    outbox.reconnected();
    outbox.send(CHAT, 'late', [], null);
    outbox.reconnected();
    outbox.snapshot(CHAT, []);
    outbox.accept(CHAT, 'late');
    timers.shift()!();
    expect(frames).toHaveLength(1);
    // A connection lost again before the timer: that timer does not send, the next snapshot decides.
    outbox.send(CHAT, 'again', [], null);
    outbox.reconnected();
    outbox.snapshot(CHAT, []);
    outbox.reconnected();
    timers.shift()!();
    expect(frames).toHaveLength(2);
  });
});
