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

async function runOnce(prompt: string): Promise<SDKMessage[]> {
  const messages: SDKMessage[] = [];
  for await (const m of query({ prompt, options: options() })) messages.push(m);
  return messages;
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
    const messages = await runOnce('hello');
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
    const messages = await runOnce('/bash echo fake-$((40+2))');
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
    const messages = await runOnce('/error 500 boom');
    const result = messages.at(-1);
    expect(result).toMatchObject({ type: 'result', is_error: true });
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
