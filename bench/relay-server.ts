/**
 * The benchmark's third target: a minimal relay, the least a chat service can be. One streaming `query()` per chat
 * (the same agent options and CLI environment as the service and the bare SDK, lib/agent-options.ts), and each text
 * delta forwarded to the chat's WebSocket with one JSON.stringify and one send: no store, no numbering, no replay,
 * no validation. It speaks just enough of the service's protocol (POST/DELETE /api/chats, `/ws/chat` frames
 * `connected`, `chat` → `user_message`, `text_delta`, `result`) for the benchmark's own client to drive it
 * unchanged. It pays the same extra hop as the service (deltas cross to a client process), so service − relay is
 * what the service itself adds, and relay − bare what the hop costs.
 *
 * Env: PORT, FAKE_URL, DATA_DIR. Prints nothing; answers GET /healthz when ready.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { query, type Query, type SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import { WebSocketServer, type WebSocket } from 'ws';
import { AsyncQueue } from '../src/agent/async-queue.js';
import { BaselineAgents } from './lib/agent-options.js';

const agents = new BaselineAgents(process.env.FAKE_URL ?? '', process.env.DATA_DIR ?? '.', process.env.AGENT_NICE);

class RelayChat {
  private readonly input = new AsyncQueue<SDKUserMessage>();
  private readonly query: Query;
  socket: WebSocket | undefined;
  queryId = '';

  constructor(readonly id: string) {
    this.query = query({ prompt: this.input, options: agents.optionsFor(id) });
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for await (const message of this.query) {
        if (message.type === 'stream_event' && message.parent_tool_use_id === null) {
          const event = message.event as { type: string; delta?: { type: string; text?: string } };
          if (event.type === 'content_block_delta' && event.delta?.type === 'text_delta') {
            this.socket?.send(JSON.stringify({ type: 'text_delta', chat_id: this.id, query_id: this.queryId, delta: event.delta.text }));
          }
        } else if (message.type === 'result') {
          this.socket?.send(JSON.stringify({ type: 'result', chat_id: this.id, query_id: this.queryId, success: !message.is_error }));
        }
      }
    } catch {
      // Closed.
    }
  }

  send(socket: WebSocket, content: string): void {
    this.socket = socket;
    this.queryId = randomUUID();
    socket.send(JSON.stringify({ type: 'user_message', chat_id: this.id, query_id: this.queryId, content }));
    this.input.push({ type: 'user', parent_tool_use_id: null, message: { role: 'user', content: [{ type: 'text', text: content }] } });
  }

  close(): void {
    this.input.end();
    this.query.close();
  }
}

const chats = new Map<string, RelayChat>();

const server = http.createServer((req, res) => {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  req.resume();
  if (req.method === 'GET' && req.url === '/healthz') return reply(200, { status: 'ok' });
  if (req.method === 'POST' && req.url === '/api/chats') {
    const id = randomUUID();
    chats.set(id, new RelayChat(id));
    return reply(201, { id });
  }
  const match = /^\/api\/chats\/([0-9a-f-]{36})$/.exec(req.url ?? '');
  if (req.method === 'DELETE' && match) {
    chats.get(match[1]!)?.close();
    chats.delete(match[1]!);
    return reply(200, { success: true });
  }
  reply(404, { detail: 'not found' });
});

const wss = new WebSocketServer({ server, path: '/ws/chat' });
wss.on('connection', (socket) => {
  socket.send(JSON.stringify({ type: 'connected' }));
  socket.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { type: string; chat_id: string; content?: string };
    if (frame.type === 'chat') chats.get(frame.chat_id)?.send(socket, frame.content ?? '');
  });
});

server.listen(Number(process.env.PORT), '127.0.0.1');
const stop = (): void => {
  for (const chat of chats.values()) chat.close();
  server.close();
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
