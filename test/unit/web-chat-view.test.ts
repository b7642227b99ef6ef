import { describe, expect, it } from 'vitest';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { applyEvent, emptyView, type ChatView } from '../../web/src/chat-view.js';

/** The web client's per-chat state machine: what each server event does to what the page shows. */
const CHAT = '0b8f1c2e-4d7a-4c51-9f0e-2a6b3c4d5e6f';
const Q = 'q1';

function run(events: ServerEvent[], view: ChatView = emptyView(CHAT)): ChatView {
  return events.reduce((v, e) => applyEvent(v, e), view);
}

const snapshot = (seq: number): ServerEvent[] => [
  {
    type: 'history',
    chat_id: CHAT,
    seq,
    has_more: false,
    messages: [
      { id: 'm1', chat_id: CHAT, role: 'user', content: 'hi', timestamp: '2026-01-01T00:00:00.000Z', images: null, status: 'complete' },
    ],
  },
  { type: 'tool_history', chat_id: CHAT, seq, tool_uses: [] },
  { type: 'processing_state', chat_id: CHAT, seq, is_processing: true, query_id: Q, streaming_state: { text: 'Hel' } },
];

describe('web client chat view', () => {
  it('continues the streamed block after a snapshot and ignores replayed events it already applied', () => {
    let v = run(snapshot(10));
    v = run(
      [
        { type: 'text_delta', chat_id: CHAT, seq: 11, query_id: Q, delta: 'lo' },
        // A replay that overlaps what the page saw: dropped by seq.
        { type: 'text_delta', chat_id: CHAT, seq: 11, query_id: Q, delta: 'lo' },
        { type: 'text_delta', chat_id: CHAT, seq: 12, query_id: Q, delta: '!' },
        { type: 'stream_end', chat_id: CHAT, seq: 13, query_id: Q },
        { type: 'result', chat_id: CHAT, seq: 14, query_id: Q, success: true, cost: 0.01, duration: 1200 },
      ],
      v,
    );
    const assistant = v.items.filter((i) => i.kind === 'assistant');
    expect(assistant).toHaveLength(1);
    expect(assistant[0]).toMatchObject({ content: 'Hello!', status: 'complete' });
    expect(v.items.at(-1)).toMatchObject({ kind: 'end', outcome: 'result', cost: 0.01, duration: 1200 });
    expect(v).toMatchObject({ processing: false, lastSeq: 14 });
  });

  it('marks a stopped answer interrupted and closes its open prompts and running tools', () => {
    let v = run(snapshot(1));
    v = run(
      [
        { type: 'tool_use', chat_id: CHAT, seq: 2, query_id: Q, tool_name: 'Bash', tool_id: 't1', tool_input: { command: 'ls' } },
        {
          type: 'permission_request',
          chat_id: CHAT,
          seq: 3,
          query_id: Q,
          request_id: 'r1',
          tool_name: 'Bash',
          tool_input: { command: 'ls' },
          tool_use_id: 't1',
          expires_at: '2026-01-01T00:02:00.000Z',
        },
      ],
      v,
    );
    expect(v.prompts).toHaveLength(1);
    v = run([{ type: 'cancelled', chat_id: CHAT, seq: 4, query_id: Q }], v);
    expect(v.prompts).toEqual([]);
    expect(v.items.find((i) => i.kind === 'tool')).toMatchObject({ running: false });
    expect(v.items.find((i) => i.kind === 'assistant')).toMatchObject({ status: 'interrupted' });
    expect(v.items.at(-1)).toMatchObject({ kind: 'end', outcome: 'cancelled' });
  });

  it('drops a prompt another tab answered', () => {
    let v = run(snapshot(1));
    const request: ServerEvent = {
      type: 'permission_request',
      chat_id: CHAT,
      seq: 2,
      query_id: Q,
      request_id: 'r1',
      tool_name: 'Write',
      tool_input: { file_path: 'a.txt', content: 'x' },
      tool_use_id: 't1',
      expires_at: '2026-01-01T00:02:00.000Z',
    };
    v = run([request, { type: 'permission_resolved', chat_id: CHAT, seq: 3, query_id: Q, request_id: 'r1', outcome: 'allowed' }], v);
    expect(v.prompts).toEqual([]);
  });

  it('shows a question open when the page subscribed (it carries the snapshot\'s seq), and forgets answered ones on a new snapshot', () => {
    const open: ServerEvent = {
      type: 'permission_request',
      chat_id: CHAT,
      seq: 7,
      query_id: Q,
      request_id: 'r7',
      tool_name: 'Bash',
      tool_input: { command: 'touch x' },
      tool_use_id: 't7',
      expires_at: '2026-01-01T00:02:00.000Z',
    };
    let v = run([...snapshot(7), open]);
    expect(v.prompts.map((p) => p.requestId)).toEqual(['r7']);
    // Reconnected with a fresh snapshot after the question was answered elsewhere: it is not shown any more.
    v = run(snapshot(9), v);
    expect(v.prompts).toEqual([]);
  });

  it('keeps several open prompts of one answer, in order, and drops only the one answered', () => {
    let v = run(snapshot(1));
    const ask = (seq: number, requestId: string, command: string): ServerEvent => ({
      type: 'permission_request',
      chat_id: CHAT,
      seq,
      query_id: Q,
      request_id: requestId,
      tool_name: 'Bash',
      tool_input: { command },
      tool_use_id: `t-${requestId}`,
      expires_at: '2026-01-01T00:02:00.000Z',
    });
    v = run([ask(2, 'r1', 'touch a'), ask(3, 'r2', 'touch b'), ask(3, 'r2', 'touch b')], v);
    expect(v.prompts.map((p) => p.requestId)).toEqual(['r1', 'r2']);
    v = run([{ type: 'permission_resolved', chat_id: CHAT, seq: 4, query_id: Q, request_id: 'r1', outcome: 'allowed' }], v);
    expect(v.prompts.map((p) => [p.requestId, p.input.command])).toEqual([['r2', 'touch b']]);
  });

  it('shows the cost and duration of answers read back from history, after each answer\'s last message, with its tools merged in', () => {
    const at = (s: number) => `2026-01-01T00:00:0${s}.000Z`;
    const v = run([
      {
        type: 'history',
        chat_id: CHAT,
        seq: 5,
        has_more: false,
        messages: [
          { id: 'u1', chat_id: CHAT, role: 'user', content: 'run it', timestamp: at(0), images: null, status: 'complete', query_id: 'q1' },
          { id: 'a1', chat_id: CHAT, role: 'assistant', content: 'Running.', timestamp: at(1), images: null, status: 'complete', query_id: 'q1' },
          {
            id: 'a2',
            chat_id: CHAT,
            role: 'assistant',
            content: 'Done.',
            timestamp: at(3),
            images: null,
            status: 'complete',
            query_id: 'q1',
            answer_end: { status: 'complete', cost: 0.02, duration: 1500, error: null },
          },
          { id: 'u2', chat_id: CHAT, role: 'user', content: 'again', timestamp: at(4), images: null, status: 'complete', query_id: 'q2' },
          {
            id: 'a3',
            chat_id: CHAT,
            role: 'assistant',
            content: 'Agai',
            timestamp: at(5),
            images: null,
            status: 'interrupted',
            query_id: 'q2',
            answer_end: { status: 'cancelled', cost: null, duration: null, error: null },
          },
        ],
      },
      {
        type: 'tool_history',
        chat_id: CHAT,
        seq: 5,
        tool_uses: [{ id: 't1', tool_name: 'Bash', tool_input: { command: 'ls' }, result_content: 'x', is_error: false, timestamp: at(2) }],
      },
    ]);
    expect(v.items.map((i) => i.key)).toEqual(['u1', 'a1', 'tool:t1', 'a2', 'end:q1', 'u2', 'a3', 'end:q2']);
    expect(v.items[4]).toMatchObject({ kind: 'end', outcome: 'result', success: true, cost: 0.02, duration: 1500 });
    expect(v.items[7]).toMatchObject({ kind: 'end', outcome: 'cancelled' });
  });

  it('replaces the shown answer when a retry starts, and leaves superseded answers and their tools out of history', () => {
    const at = (n: number) => `2026-01-01T00:00:0${n}.000Z`;
    let v = run([
      {
        type: 'history',
        chat_id: CHAT,
        seq: 1,
        messages: [
          { id: 'u1', chat_id: CHAT, role: 'user', content: 'hi', timestamp: at(0), images: null, status: 'complete', query_id: 'q1' },
          {
            id: 'a1',
            chat_id: CHAT,
            role: 'assistant',
            content: 'old',
            timestamp: at(2),
            images: null,
            status: 'complete',
            query_id: 'q1',
            answer_end: { status: 'complete', cost: 0.01, duration: 10, error: null },
          },
        ],
      },
      {
        type: 'tool_history',
        chat_id: CHAT,
        seq: 1,
        tool_uses: [{ id: 't1', tool_name: 'Bash', tool_input: {}, result_content: 'x', is_error: false, timestamp: at(1) }],
      },
      { type: 'processing_state', chat_id: CHAT, seq: 1, is_processing: false, query_id: null, streaming_state: null },
    ]);
    expect(v.items.map((i) => i.key)).toEqual(['u1', 'tool:t1', 'a1', 'end:q1']);
    v = run(
      [
        { type: 'answer_retried', chat_id: CHAT, seq: 2, query_id: 'q2', message_id: 'u1', superseded_message_ids: ['a1'] },
        { type: 'stream_start', chat_id: CHAT, seq: 3, query_id: 'q2' },
        { type: 'text_delta', chat_id: CHAT, seq: 4, query_id: 'q2', delta: 'new' },
      ],
      v,
    );
    expect(v.items.map((i) => i.kind)).toEqual(['user', 'assistant']);
    expect(v.items[1]).toMatchObject({ content: 'new', status: 'streaming', queryId: 'q2' });
    expect(v).toMatchObject({ processing: true, queryId: 'q2' });

    // Read back: the superseded answer and its tool call are in history, flagged; the page leaves them out.
    v = run([
      {
        type: 'history',
        chat_id: CHAT,
        seq: 9,
        messages: [
          { id: 'u1', chat_id: CHAT, role: 'user', content: 'hi', timestamp: at(0), images: null, status: 'complete', query_id: 'q1' },
          { id: 'a1', chat_id: CHAT, role: 'assistant', content: 'old', timestamp: at(2), images: null, status: 'complete', query_id: 'q1', superseded: true },
          { id: 'a2', chat_id: CHAT, role: 'assistant', content: 'new', timestamp: at(3), images: null, status: 'complete', query_id: 'q2' },
        ],
      },
      {
        type: 'tool_history',
        chat_id: CHAT,
        seq: 9,
        tool_uses: [{ id: 't1', tool_name: 'Bash', tool_input: {}, result_content: 'x', is_error: false, timestamp: at(1), superseded: true }],
      },
    ]);
    expect(v.items.map((i) => i.key)).toEqual(['u1', 'a2']);
  });
});
