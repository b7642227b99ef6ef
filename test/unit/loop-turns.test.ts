import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { LoopTurns } from '../../src/lib/loop-turns.js';
import { ChatUpdates, type ChatListUpdate } from '../../src/chats/chat-updates.js';
import type { Chat } from '../../src/protocol/chat.js';

/** A connected loopback TCP pair: bytes written on one end are readable on the other in the next poll phase. */
async function tcpPair(): Promise<{ writer: net.Socket; reader: net.Socket; close: () => void }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const writer = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(writer, 'connect');
  const [reader] = (await accepted) as [net.Socket];
  return {
    writer,
    reader,
    close: () => {
      writer.destroy();
      reader.destroy();
      server.close();
    },
  };
}

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((f) => f()));

describe('LoopTurns', () => {
  it('hands out one turn per event-loop iteration, so I/O that became readable is handled between two turns', async () => {
    const { writer, reader, close } = await tcpPair();
    cleanups.push(close);
    const order: string[] = [];
    reader.on('data', () => order.push('data'));
    const turns = new LoopTurns();
    await Promise.all(
      [1, 2, 3].map(async (i) => {
        await turns.take();
        order.push(`turn ${i}`);
        // Stands for an agent's output arriving while a burst of frames is being handled.
        if (i === 1) writer.write('x');
      }),
    );
    expect(order).toEqual(['turn 1', 'data', 'turn 2', 'turn 3']);
    expect(turns.queued).toBe(0);
  });

  it('keeps the order turns were asked in, also for turns asked for while others run', async () => {
    const turns = new LoopTurns();
    const order: number[] = [];
    const late: Promise<void>[] = [];
    await Promise.all(
      [1, 2, 3].map(async (i) => {
        await turns.take();
        order.push(i);
        if (i === 1) late.push(turns.take().then(() => void order.push(4)));
      }),
    );
    await Promise.all(late);
    expect(order).toEqual([1, 2, 3, 4]);
  });

  it("lets chat-list updates go out once after the frames already waiting, so a burst's updates stay one write", async () => {
    const turns = new LoopTurns();
    const updates = new ChatUpdates(turns);
    const writes: ChatListUpdate[][] = [];
    updates.add({ ownerId: null, sendChatUpdates: (u) => writes.push([...u]) });
    // Three frames of a burst, each publishing an update when its turn comes.
    await Promise.all(
      ['c1', 'c2', 'c3'].map(async (id) => {
        await turns.take();
        updates.publish(null, 'updated', { id, title: id } as unknown as Chat);
        expect(writes).toEqual([]);
      }),
    );
    await turns.take();
    expect(writes.map((w) => w.map((u) => u.event.chat_id))).toEqual([['c1', 'c2', 'c3']]);
  });
});
