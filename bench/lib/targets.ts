import type { BareWorker } from './bare-sdk.js';
import { api, type ServiceProcess } from './service.js';
import { sleep } from './util.js';
import { BenchSocket, type TurnRecord } from './ws-client.js';

/**
 * One conversation, on either side. The scenarios (lib/scenarios.ts) only see this, so the service and the bare
 * SDK are driven by the same code and measured the same way.
 */
export interface BenchChat {
  /** Sends a message and resolves at the end of the answer. The first call on a chat is its cold start. */
  turn(text: string, timeoutMs: number): Promise<TurnRecord>;
  /** Ends the chat and its agent process. */
  close(): Promise<void>;
}

export interface Target {
  name: 'service' | 'bare SDK' | 'relay';
  /** Root of the process tree to sample: the service's Node process or the bare worker. */
  pid: number;
  /** offset_of_fake − offset_of_receiver (lib/clock.ts), added to every latency. */
  skewMs: number;
  newChat(): Promise<BenchChat>;
}

/**
 * The service: each chat is created over REST and gets its OWN WebSocket, like one browser tab per user (the
 * concurrency figures therefore include N sockets, not N chats multiplexed on one).
 */
export function serviceTarget(
  service: ServiceProcess,
  skewMs: number,
  { subscribeFirstMs, name = 'service' }: { subscribeFirstMs?: number; name?: 'service' | 'relay' } = {},
): Target {
  return {
    name,
    pid: service.pid,
    skewMs,
    newChat: async () => {
      const { id } = await api<{ id: string }>(service.url, 'POST', '/api/chats', { title: 'bench' });
      const socket = await BenchSocket.connect(service.wsUrl);
      if (subscribeFirstMs !== undefined) {
        // For a prewarm feature: the user opens the chat, then takes a moment to type the first message.
        await socket.subscribe(id);
        await sleep(subscribeFirstMs);
      }
      return {
        turn: (text, timeoutMs) => socket.turn(id, text, timeoutMs),
        close: async () => {
          socket.close();
          // DELETE stops the chat's agent process (and removes its workspace).
          await api(service.url, 'DELETE', `/api/chats/${id}`);
        },
      };
    },
  };
}

/**
 * The bare SDK: each chat is one query() in the worker; the first turn creates it (cold = query() + message). With
 * `openFirstMs`, the bare SDK's prewarm: the query() starts without a message, its CLI initializes, and the first
 * message follows `openFirstMs` later (as the service's prewarm column: the user opens the chat, then types).
 */
export function bareTarget(worker: BareWorker, skewMs: number, { openFirstMs }: { openFirstMs?: number } = {}): Target {
  let next = 0;
  return {
    name: 'bare SDK',
    pid: worker.pid,
    skewMs,
    newChat: async () => {
      const sid = `s${next++}`;
      let opened = false;
      if (openFirstMs !== undefined) {
        await worker.open(sid, 60_000);
        opened = true;
        await sleep(openFirstMs);
      }
      return {
        turn: (text, timeoutMs) => {
          const open = !opened;
          opened = true;
          return worker.turn(sid, text, open, timeoutMs);
        },
        close: () => worker.close(sid),
      };
    },
  };
}
