// End-to-end: the REAL Agent SDK + REAL bundled CLI + real tools, against the scripted fake API.
// Nothing is mocked; each test spawns a CLI process pointed at the fake through ANTHROPIC_BASE_URL.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { query, type Options, type SDKMessage, type SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import { startFakeModel, type FakeModel } from '../../fake-model/server.js';

// A 1x1 PNG.
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

let fake: FakeModel;
const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Options isolating the CLI: explicit env (it replaces, not merges), no settings from disk. */
function options(): Options {
  return {
    cwd: tempDir('fake-model-cwd-'),
    settingSources: [],
    permissionMode: 'bypassPermissions',
    includePartialMessages: true,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: tempDir('fake-model-home-'),
      ANTHROPIC_BASE_URL: fake.url,
      ANTHROPIC_API_KEY: 'test-key',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      IS_SANDBOX: '1',
      CLAUDE_CODE_MAX_RETRIES: '0',
    },
  };
}

/** A prompt stream the test pushes user messages into; end() lets the CLI exit. */
function inputQueue() {
  const pending: SDKUserMessage[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const iterable: AsyncIterable<SDKUserMessage> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = pending.shift();
        if (next) yield next;
        else if (ended) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
  const poke = (): void => {
    wake?.();
    wake = undefined;
  };
  return {
    iterable,
    push(content: SDKUserMessage['message']['content']): void {
      pending.push({ type: 'user', message: { role: 'user', content }, parent_tool_use_id: null });
      poke();
    },
    end(): void {
      ended = true;
      poke();
    },
  };
}

function textDeltas(messages: SDKMessage[]): string {
  return messages
    .map((m) => (m.type === 'stream_event' && m.event.type === 'content_block_delta' && m.event.delta.type === 'text_delta' ? m.event.delta.text : ''))
    .join('');
}

function assistantText(messages: SDKMessage[]): string {
  return messages
    .flatMap((m) => (m.type === 'assistant' ? m.message.content : []))
    .map((b) => (b.type === 'text' ? b.text : ''))
    .join('\n');
}

/** Messages up to and including the next `result`. */
async function untilResult(it: AsyncIterator<SDKMessage>): Promise<SDKMessage[]> {
  const out: SDKMessage[] = [];
  for (;;) {
    const { value, done } = await it.next();
    if (done) throw new Error(`stream ended before a result; got ${out.map((m) => m.type).join(',')}`);
    out.push(value);
    if (value.type === 'result') return out;
  }
}

/**
 * One single-prompt query. With a string prompt the SDK yields the error `result` and THEN
 * throws ("Claude Code returned an error result: ..."), so the thrown error is returned too.
 */
async function runOnce(prompt: string): Promise<{ messages: SDKMessage[]; thrown?: Error }> {
  const messages: SDKMessage[] = [];
  try {
    for await (const m of query({ prompt, options: options() })) messages.push(m);
    return { messages };
  } catch (err) {
    return { messages, thrown: err as Error };
  }
}

beforeAll(async () => {
  fake = await startFakeModel({ log: process.env.FAKE_MODEL_LOG ? (l) => console.log(`[fake] ${l}`) : undefined });
});

afterAll(async () => {
  await fake?.close();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('fake model driving the real SDK and CLI', () => {
  it('echoes the user text as streamed deltas, with a non-zero cost', async () => {
    const { messages, thrown } = await runOnce('hello');
    expect(thrown).toBeUndefined();
    const deltas = messages.filter((m) => m.type === 'stream_event' && m.event.type === 'content_block_delta');
    expect(deltas.length).toBeGreaterThanOrEqual(2);
    expect(textDeltas(messages)).toBe('Echo: hello');
    const result = messages.at(-1);
    expect(result?.type).toBe('result');
    if (result?.type !== 'result') return;
    expect(result.subtype).toBe('success');
    expect(result.is_error).toBe(false);
    expect(result.total_cost_usd).toBeGreaterThan(0);
    // The fake echoes the requested model back.
    const turn = fake.requests.find((r) => r.path === '/v1/messages' && JSON.stringify(r.body).includes('hello'));
    expect(turn?.body.model).toBeTruthy();
  }, 60_000);

  it('asks for Bash, the CLI really runs it, and the tool result comes back', async () => {
    const { messages, thrown } = await runOnce('/bash echo fake-$((40+2))');
    expect(thrown).toBeUndefined();
    const toolUse = messages
      .flatMap((m) => (m.type === 'assistant' ? m.message.content : []))
      .find((b) => b.type === 'tool_use');
    expect(toolUse).toMatchObject({ name: 'Bash', input: { command: 'echo fake-$((40+2))' } });
    expect(assistantText(messages)).toContain('Tool result: fake-42');
    const result = messages.at(-1);
    expect(result).toMatchObject({ type: 'result', subtype: 'success', is_error: false });
  }, 60_000);

  it('surfaces an HTTP 500 as an error result quickly (no retries)', async () => {
    const started = Date.now();
    const { messages, thrown } = await runOnce('/error 500 boom');
    const result = messages.at(-1);
    expect(result).toMatchObject({ type: 'result', is_error: true });
    expect(thrown?.message).toContain('500 boom');
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 60_000);

  it('keeps earlier turns in a streaming-input session (/recall)', async () => {
    const input = inputQueue();
    const q = query({ prompt: input.iterable, options: options() });
    const it = q[Symbol.asyncIterator]();
    try {
      input.push('alpha');
      const first = await untilResult(it);
      expect(assistantText(first)).toContain('Echo: alpha');
      input.push('/recall');
      const second = await untilResult(it);
      expect(assistantText(second)).toBe('Earlier: alpha');
    } finally {
      input.end();
      q.close();
    }
  }, 60_000);

  it('passes image blocks through to the model (/images)', async () => {
    const input = inputQueue();
    const q = query({ prompt: input.iterable, options: options() });
    const it = q[Symbol.asyncIterator]();
    try {
      input.push([
        { type: 'text', text: '/images' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } },
      ]);
      const messages = await untilResult(it);
      const bytes = Buffer.from(PNG_B64, 'base64').length;
      expect(assistantText(messages)).toBe(`Saw 1 image(s): image/png ${bytes} bytes`);
      const sent = fake.requests.some((r) => JSON.stringify(r.body ?? '').includes(PNG_B64));
      expect(sent).toBe(true);
    } finally {
      input.end();
      q.close();
    }
  }, 60_000);
});

// The HTTP surface on its own (no CLI): the directives whose effect the CLI hides behind retries
// and fallbacks, and robustness when clients go away.
describe('fake model HTTP surface', () => {
  const TOOLS = [{ name: 'Bash', input_schema: { type: 'object' } }];
  const post = (content: string, extra: Record<string, unknown> = {}, init: RequestInit = {}): Promise<Response> =>
    fetch(`${fake.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-test-1', max_tokens: 100, tools: TOOLS, messages: [{ role: 'user', content }], ...extra }),
      ...init,
    });
  // Loosely typed on purpose: the assertions check the shape.
  const json = (res: Response): Promise<any> => res.json();
  const sseEvents = (text: string): string[] =>
    text.split('\n\n').flatMap((frame) => /^event: (.+)$/m.exec(frame)?.[1] ?? []);

  it('answers unknown paths with an Anthropic-shaped 404 and counts tokens', async () => {
    const missing = await fetch(`${fake.url}/v1/models`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    const count = await fetch(`${fake.url}/v1/messages/count_tokens`, {
      method: 'POST',
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hello world' }] }),
    });
    expect((await json(count)).input_tokens).toBeGreaterThan(0);
  });

  it('returns a JSON message for stream:false, echoing the model, with usage', async () => {
    const res = await post('/multi');
    const body = await json(res);
    expect(body).toMatchObject({
      type: 'message',
      model: 'claude-test-1',
      stop_reason: 'end_turn',
      content: [{ type: 'text', text: 'First block.' }, { type: 'text', text: 'Second block.' }],
    });
    expect(body.usage.input_tokens).toBeGreaterThan(0);
    expect(body.usage.output_tokens).toBeGreaterThan(0);
  });

  it('streams the full event sequence, and an SSE error for /midstream-error', async () => {
    const ok = sseEvents(await (await post('hi', { stream: true })).text());
    expect(ok).toEqual(['message_start', 'ping', 'content_block_start', 'content_block_delta', 'content_block_delta',
      'content_block_stop', 'message_delta', 'message_stop']);
    const cut = await (await post('/midstream-error', { stream: true })).text();
    expect(sseEvents(cut).at(-1)).toBe('error');
    expect(cut).toContain('"overloaded_error"');
    expect(cut).not.toContain('message_stop');
  });

  it('maps /error statuses to error types, with retry-after on 429', async () => {
    const res = await post('/error 429 slow down', { stream: true });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('0');
    expect(await res.json()).toEqual({ type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } });
    expect((await json(await post('/error 529'))).error.type).toBe('overloaded_error');
  });

  it('drops the socket for /disconnect, and survives clients that leave', async () => {
    await expect(post('/disconnect 1', { stream: true }).then((r) => r.text())).rejects.toThrow();
    await expect(post('/slow 50 20', { stream: true }, { signal: AbortSignal.timeout(100) }).then((r) => r.text())).rejects.toThrow();
    await expect(post('/hang', { stream: true }, { signal: AbortSignal.timeout(100) })).rejects.toThrow();
    expect((await post('still alive')).status).toBe(200);
  });

  it('stamps deltas with the send time (/stamp)', async () => {
    const before = performance.timeOrigin + performance.now();
    const text = await (await post('/stamp 3 10', { stream: true })).text();
    const stamps = [...text.matchAll(/<t>([\d.]+)<\/t>/g)].map((m) => Number(m[1]));
    expect(stamps).toHaveLength(3);
    expect(stamps[0]).toBeGreaterThanOrEqual(before);
    expect(stamps[2]! - stamps[0]!).toBeGreaterThanOrEqual(15);
  });

  it('does not apply directives to side requests (setModel probe, session title)', async () => {
    const probe = await post('/error 500', { tools: undefined, max_tokens: 1 });
    expect(probe.status).toBe(200);
    expect((await json(probe)).content[0].text).toBe('OK.');
    const schema = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] };
    const title = await post('/hang', { tools: [], output_config: { format: { type: 'json_schema', schema } } });
    expect(JSON.parse((await json(title)).content[0].text)).toEqual({ title: 'Fake title' });
    // A real turn with the SDK's `tools: []` still obeys directives.
    expect((await post('/error 503', { tools: [] })).status).toBe(503);
  });

  it('closes promptly even with a request hanging', async () => {
    const own = await startFakeModel();
    const hanging = fetch(`${own.url}/v1/messages`, {
      method: 'POST',
      body: JSON.stringify({ tools: TOOLS, stream: true, messages: [{ role: 'user', content: '/hang' }] }),
    }).catch(() => 'closed');
    await new Promise((r) => setTimeout(r, 50));
    await own.close();
    expect(await hanging).toBe('closed');
    expect(own.requests).toHaveLength(1);
  });
});
