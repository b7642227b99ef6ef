// HTTP side of the fake Anthropic API: routing, request log, and playing a Plan as SSE or JSON.
// What to answer is decided in script.ts; how events look is in sse.ts.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { estimateTokens, type MessagesRequest } from './conversation.js';
import { planReply, errorTypeFor, isConversationTurn, type Plan } from './script.js';
import { encodeSse, errorBody, jsonMessage, streamSteps, type Step } from './sse.js';

export interface RecordedRequest {
  method: string;
  /** Path without the query string, e.g. `/v1/messages` (the CLI adds `?beta=true`). */
  path: string;
  /** Raw URL as received, query included. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined if empty or not JSON). */
  body: any;
  /** Date.now() when the body was fully received. */
  receivedAt: number;
}

export interface FakeModel {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /**
   * A storm: for `forMs`, every conversation turn is answered with HTTP `status` (default 529) and a `retry-after`
   * of `retryAfterS` seconds, whatever its text says. Side requests (title, model probe) are unaffected.
   */
  storm(options: { forMs: number; status?: number; retryAfterS?: number }): void;
  close(): Promise<void>;
}

export interface FakeModelOptions {
  port?: number;
  host?: string;
  log?: (line: string) => void;
}

// Large enough for several base64 images in one turn.
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export async function startFakeModel(opts: FakeModelOptions = {}): Promise<FakeModel> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? (() => {});
  const requests: RecordedRequest[] = [];
  let stormUntil = 0;
  let stormAnswer: Extract<Plan, { kind: 'http_error' }> | undefined;

  const server = createServer((req, res) => {
    // A client that goes away must never crash the fake.
    req.on('error', () => {});
    res.on('error', () => {});
    void readBody(req).then(
      (raw) => handle(req, res, raw),
      () => sendError(res, 413, 'request_too_large', 'Request body too large'),
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  // Node closes idle keep-alive connections after 5 s, and a CLI reusing one at that instant gets ECONNRESET.
  // The real API keeps them much longer; so does the fake.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;

  function handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    let body: any;
    let badJson = false;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      badJson = true;
    }
    requests.push({ method: req.method ?? 'GET', path, url, headers: req.headers, body, receivedAt: Date.now() });

    if (req.method !== 'POST' || (path !== '/v1/messages' && path !== '/v1/messages/count_tokens')) {
      log(`${req.method} ${url} -> 404`);
      return sendError(res, 404, 'not_found_error', `Not found: ${req.method} ${path}`);
    }
    if (badJson || typeof body !== 'object' || body === null) {
      log(`${req.method} ${url} -> 400 (bad JSON)`);
      return sendError(res, 400, 'invalid_request_error', 'Body must be a JSON object');
    }
    if (path === '/v1/messages/count_tokens') {
      const inputTokens = estimateTokens({ system: body.system, messages: body.messages, tools: body.tools });
      log(`POST ${url} -> input_tokens=${inputTokens}`);
      return sendJson(res, 200, { input_tokens: inputTokens });
    }
    answerMessages(body as MessagesRequest, res, url);
  }

  function answerMessages(body: MessagesRequest, res: ServerResponse, url: string): void {
    const plan = Date.now() < stormUntil && stormAnswer && isConversationTurn(body) ? stormAnswer : planReply(body);
    log(`POST ${url} model=${body.model} stream=${Boolean(body.stream)} turn=${isConversationTurn(body)} -> ${describe(plan)}`);
    if (plan.kind === 'hang') return; // Held open until the client (or close()) drops the socket.
    if (plan.kind === 'http_error') return sendError(res, plan.status, plan.errorType, plan.message, plan.retryAfterS);

    const ctx = { model: body.model ?? 'claude-fake', inputTokens: estimateTokens({ system: body.system, messages: body.messages }) };
    if (!body.stream) {
      // Non-streaming has no "middle": a planned cut becomes its equivalent whole-response failure.
      if (plan.cut?.how === 'disconnect') return void res.socket?.destroy();
      if (plan.cut?.how === 'stall') return; // held open, like a hang
      if (plan.cut?.how === 'malformed') {
        res.writeHead(200, { 'content-type': 'application/json', 'request-id': requestId() });
        return void res.end('{"id":"msg_fake_truncated","type":"message","content":[{"type":"te');
      }
      if (plan.cut) return sendError(res, 529, errorTypeFor(529), 'Overloaded');
      return sendJson(res, 200, jsonMessage(plan, ctx));
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': requestId(),
    });
    play(res, streamSteps(plan, ctx));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    storm: ({ forMs, status = 529, retryAfterS = 1 }) => {
      stormUntil = Date.now() + forMs;
      stormAnswer = { kind: 'http_error', status, errorType: errorTypeFor(status), message: 'Overloaded (storm)', retryAfterS };
      log(`storm: HTTP ${status} (retry-after ${retryAfterS} s) for ${forMs} ms`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Hung and streaming requests would otherwise keep close() waiting forever.
        server.closeAllConnections();
      }),
  };
}

/** Write steps in order, honouring delays; stop quietly (timer cleared) if the client leaves. */
function play(res: ServerResponse, steps: Step[]): void {
  let index = 0;
  let timer: NodeJS.Timeout | undefined;
  let gone = false;
  res.on('close', () => {
    gone = true;
    if (timer) clearTimeout(timer);
  });

  const run = (step: Step): boolean => {
    if (gone) return false;
    if (step.kind === 'disconnect') {
      res.socket?.destroy();
      return false;
    }
    if (step.kind === 'stall') return false; // nothing more; the client gives up (its timeout) or close() ends it
    if (step.kind === 'raw') {
      res.end(step.text);
      return false;
    }
    res.write(encodeSse(step.make()));
    return true;
  };

  const next = (): void => {
    while (!gone) {
      const step = steps[index++];
      if (!step) return void res.end();
      if (step.delayMs > 0) {
        timer = setTimeout(() => {
          timer = undefined;
          if (run(step)) next();
        }, step.delayMs);
        return;
      }
      if (!run(step)) return;
    }
  };
  next();
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) reject(new Error('too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const requestId = (): string => `req_fake_${randomUUID().replaceAll('-', '').slice(0, 24)}`;

function sendJson(res: ServerResponse, status: number, payload: object, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': requestId(), ...headers });
  res.end(JSON.stringify(payload));
}

function sendError(res: ServerResponse, status: number, errorType: string, message: string, retryAfterS?: number): void {
  // 429 tells clients they may retry at once (unless a plan says when), so rate-limit tests don't sit in backoff.
  const retryAfter = retryAfterS ?? (status === 429 ? 0 : undefined);
  const headers: Record<string, string> = retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {};
  sendJson(res, status, errorBody(errorType, message), headers);
}

function describe(plan: Plan): string {
  if (plan.kind === 'http_error') return `HTTP ${plan.status} ${plan.errorType}${plan.retryAfterS !== undefined ? ` retry-after ${plan.retryAfterS}` : ''}`;
  if (plan.kind === 'hang') return 'hang';
  const blocks = plan.blocks.map((b) => (b.type === 'text' ? `text(${b.chunks.length})` : `tool_use(${b.name})`));
  return `${blocks.join('+')} ${plan.stopReason}${plan.cut ? ` cut:${plan.cut.how}@${plan.cut.afterDeltas}` : ''}`;
}
