// The stress checker itself: a clean recorded run passes, and each kind of broken stream is reported under the
// invariant it breaks (so a green stress run means the invariants were really checked).
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/protocol/chat.js';
import type { ServerEvent } from '../../src/protocol/ws.js';
import { mulberry32 } from '../helpers/prng.js';
import { checkRecords, planOperations, type ConnRecord } from './stress-runner.js';

const A = 'chat-a';
const B = 'chat-b';

function observerEvents(): ServerEvent[] {
  const c = { chat_id: A };
  return [
    { type: 'connected' },
    { type: 'history', ...c, seq: 100, messages: [] },
    { type: 'tool_history', ...c, seq: 100, tool_uses: [] },
    { type: 'processing_state', ...c, seq: 100, is_processing: false, query_id: null, streaming_state: null },
    { type: 'user_message', ...c, seq: 101, query_id: 'q1', content: 'hi', message_id: 'm1' },
    { type: 'stream_start', ...c, seq: 102, query_id: 'q1' },
    { type: 'text_delta', ...c, seq: 103, query_id: 'q1', delta: 'Echo: ' },
    { type: 'text_delta', ...c, seq: 104, query_id: 'q1', delta: 'hi' },
    { type: 'stream_end', ...c, seq: 105, query_id: 'q1' },
    { type: 'result', ...c, seq: 106, query_id: 'q1', success: true, cost: 0.01, duration: 10 },
    { type: 'user_message', ...c, seq: 107, query_id: 'q2', content: '/slow', message_id: 'm3' },
    { type: 'stream_start', ...c, seq: 108, query_id: 'q2' },
    { type: 'text_delta', ...c, seq: 109, query_id: 'q2', delta: 'chunk1 ' },
    { type: 'stream_end', ...c, seq: 110, query_id: 'q2' },
    { type: 'cancelled', ...c, seq: 111, query_id: 'q2' },
  ];
}

const msg = (id: string, role: 'user' | 'assistant', content: string, status: ChatMessage['status'] = 'complete'): ChatMessage => ({
  id,
  chat_id: A,
  role,
  content,
  timestamp: '2026-01-01T00:00:00.000Z',
  images: null,
  status,
});

function storedMessages(): ChatMessage[] {
  return [msg('m1', 'user', 'hi'), msg('m2', 'assistant', 'Echo: hi'), msg('m3', 'user', '/slow'), msg('m4', 'assistant', 'chunk1 ', 'interrupted')];
}

interface Scenario {
  observer: ServerEvent[];
  replayer: ServerEvent[];
  stored: ChatMessage[];
}

function scenario(): Scenario {
  const observer = observerEvents();
  // A reconnected socket that asked for the events after seq 104.
  const replayer: ServerEvent[] = [{ type: 'connected' }, ...observer.filter((e) => 'seq' in e && e.seq! > 104)];
  return { observer, replayer, stored: storedMessages() };
}

function run(s: Scenario) {
  const violations: string[] = [];
  const conns: ConnRecord[] = [
    { label: 'observer', events: s.observer, follows: new Map([[A, 1]]), replays: new Map(), openAtEnd: true },
    { label: 's0#1', events: s.replayer, follows: new Map([[A, 1]]), replays: new Map([[A, 104]]), openAtEnd: true },
  ];
  const figures = checkRecords({ conns, observer: 'observer', chatIds: [A, B], stored: new Map([[A, s.stored], [B, []]]), violate: (v) => violations.push(v) });
  return { violations, figures };
}

const tags = (violations: string[]) => [...new Set(violations.map((v) => v.split(':')[0]))].sort();

describe('the stress checker', () => {
  it('passes a clean run and counts it', () => {
    const { violations, figures } = run(scenario());
    expect(violations).toEqual([]);
    expect(figures).toMatchObject({ queries: 2, results: 1, cancelled: 1, errors: 0, replays: 1, historyFallbacks: 0 });
  });

  it('1: two terminal events', () => {
    const s = scenario();
    s.observer.push({ type: 'cancelled', chat_id: A, seq: 112, query_id: 'q2' });
    expect(tags(run(s).violations)).toContain('1');
  });

  it('1 + 7: a socket that followed the end of a query missed its terminal', () => {
    const s = scenario();
    s.replayer = s.replayer.filter((e) => e.type !== 'result');
    expect(tags(run(s).violations)).toEqual(['1', '7']); // a hole in a replayed subscription
  });

  it('2 + 3: an event of a query after its end (and after a newer query started)', () => {
    const s = scenario();
    s.observer.push({ type: 'text_delta', chat_id: A, seq: 112, query_id: 'q1', delta: 'late' });
    expect(tags(run(s).violations)).toEqual(expect.arrayContaining(['2', '3']));
  });

  it("3: an older query's text after a newer query's stream_start", () => {
    const s = scenario();
    const i = s.observer.findIndex((e) => e.type === 'stream_start' && e.query_id === 'q2');
    // q1's last delta and its end move after q2's stream_start (seqs renumbered to stay contiguous)
    const moved = s.observer.splice(7, 3);
    s.observer.splice(i - 3 + 1, 0, ...moved);
    let seq = 101;
    for (const e of s.observer) if ('seq' in e && e.type !== 'history' && e.type !== 'tool_history' && e.type !== 'processing_state') e.seq = seq++;
    expect(tags(run(s).violations)).toContain('3');
  });

  it('4: a query id in two chats, and an event of a chat the socket does not follow', () => {
    const s = scenario();
    s.replayer.push({ type: 'stream_start', chat_id: B, seq: 5, query_id: 'q1' });
    const found = run(s).violations;
    expect(found.some((v) => v.startsWith('4: query q1'))).toBe(true);
    expect(found.some((v) => v.includes('does not follow'))).toBe(true);
  });

  it('5: seq not increasing, and a hole', () => {
    const s = scenario();
    (s.observer[6] as { seq: number }).seq = 102;
    expect(run(s).violations.some((v) => v.startsWith('5:') && v.includes('after seq'))).toBe(true);
    const t = scenario();
    t.observer.splice(6, 1);
    t.stored[1] = msg('m2', 'assistant', 'hi');
    expect(tags(run(t).violations)).toEqual(['5']);
  });

  it('7: a replay that does not continue from last_seq + 1', () => {
    const s = scenario();
    s.replayer.splice(1, 1);
    expect(tags(run(s).violations)).toContain('7');
  });

  it('7: a replay answered with history is a fallback, not a violation', () => {
    const s = scenario();
    const history: ServerEvent = { type: 'history', chat_id: A, seq: 111, messages: storedMessages() };
    s.replayer = [{ type: 'connected' }, history, ...s.observer.slice(2, 4).map((e) => ({ ...e, seq: 111 }) as ServerEvent)];
    const { violations, figures } = run(s);
    expect(violations).toEqual([]);
    expect(figures).toMatchObject({ replays: 0, historyFallbacks: 1 });
  });

  it('6b: a snapshot that does not match the stream at its seq', () => {
    const s = scenario();
    // history at seq 104 must hold the user message only (the block is still streaming); processing_state names q1
    // with the text so far
    const c = { chat_id: A, seq: 104 };
    const at104: ServerEvent[] = [
      { type: 'connected' },
      { type: 'history', ...c, messages: [msg('m1', 'user', 'hi')] },
      { type: 'tool_history', ...c, tool_uses: [] },
      { type: 'processing_state', ...c, is_processing: true, query_id: 'q1', streaming_state: { text: 'Echo: hi' } },
      ...s.observer.filter((e) => 'seq' in e && e.seq! > 104),
    ];
    s.replayer = at104;
    const { violations } = run({ ...s, replayer: at104 });
    // the replayer also asked for a replay in run(): here its first event is history, i.e. a fallback
    expect(violations).toEqual([]);
    const wrongHistory = structuredClone(at104);
    (wrongHistory[1] as { messages: ChatMessage[] }).messages.push(msg('m2', 'assistant', 'Echo: hi'));
    expect(tags(run({ ...s, replayer: wrongHistory }).violations)).toEqual(['6b']);
    const wrongText = structuredClone(at104);
    (wrongText[3] as { streaming_state: { text: string } }).streaming_state.text = 'Echo: ';
    expect(tags(run({ ...s, replayer: wrongText }).violations)).toEqual(['6b']);
    const notRunning = structuredClone(at104);
    Object.assign(notRunning[3]!, { is_processing: false, query_id: null, streaming_state: null });
    expect(tags(run({ ...s, replayer: notRunning }).violations)).toEqual(['6b']);
  });

  it('6: stored text differs from the streamed text, or has the wrong status', () => {
    const s = scenario();
    s.stored[1] = msg('m2', 'assistant', 'Echo: h');
    expect(tags(run(s).violations)).toEqual(['6']);
    const t = scenario();
    t.stored[1] = msg('m2', 'assistant', 'Echo: hi', 'interrupted');
    expect(tags(run(t).violations)).toEqual(['6']);
    const u = scenario();
    u.stored.push(msg('m5', 'user', 'lost'));
    expect(tags(run(u).violations)).toEqual(['6']);
  });

  it('6 + 6b: a query ended by a node loss may have stored a prefix of its text (the last checkpoint), or nothing; any other query may not', () => {
    // q2 ends with node_lost instead of cancelled: its stored answer is what was checkpointed before the node died.
    const lostEnd = (s: Scenario): Scenario => {
      const swap = (e: ServerEvent): ServerEvent =>
        e.type === 'cancelled' ? { type: 'error', chat_id: A, seq: e.seq, query_id: 'q2', code: 'node_lost', error: 'the node running it was lost' } : e;
      return { ...s, observer: s.observer.map(swap), replayer: s.replayer.map(swap) };
    };
    const prefix = lostEnd(scenario());
    prefix.stored[3] = msg('m4', 'assistant', 'chunk', 'interrupted');
    expect(run(prefix).violations).toEqual([]);
    const nothing = lostEnd(scenario());
    nothing.stored.pop();
    expect(run(nothing).violations).toEqual([]);
    const other = lostEnd(scenario());
    other.stored[3] = msg('m4', 'assistant', 'chunk2', 'interrupted');
    expect(tags(run(other).violations)).toEqual(['6']);
    // Not a node loss: the same prefix is a lost piece of text.
    const cancelled = scenario();
    cancelled.stored[3] = msg('m4', 'assistant', 'chunk', 'interrupted');
    expect(tags(run(cancelled).violations)).toEqual(['6']);
    // A history snapshot taken after the loss shows the stored prefix.
    const later = lostEnd(scenario());
    later.stored[3] = msg('m4', 'assistant', 'chunk', 'interrupted');
    const snapshot: ServerEvent = { type: 'history', chat_id: A, seq: 111, messages: later.stored };
    expect(run({ ...later, replayer: [{ type: 'connected' }, snapshot] }).violations.filter((v) => v.startsWith('6b'))).toEqual([]);
    const wrong: ServerEvent = { type: 'history', chat_id: A, seq: 111, messages: [...later.stored.slice(0, 3), msg('m4', 'assistant', 'other', 'interrupted')] };
    expect(tags(run({ ...later, replayer: [{ type: 'connected' }, wrong] }).violations)).toContain('6b');
  });
});

describe('the plan', () => {
  it('is a pure function of the seed', () => {
    expect(planOperations(7, 200, 4, 3)).toEqual(planOperations(7, 200, 4, 3));
    expect(planOperations(7, 200, 4, 3)).not.toEqual(planOperations(8, 200, 4, 3));
    const r = mulberry32(1);
    expect([r(), r()]).toEqual([mulberry32(1)(), (() => { const x = mulberry32(1); x(); return x(); })()]);
  });

  it('kills nodes and reconnects to random nodes only with several nodes; the first node (the observer\'s) is never killed', () => {
    expect(planOperations(7, 2000, 4, 3, { nodes: 1 })).toEqual(planOperations(7, 2000, 4, 3));
    expect(planOperations(7, 2000, 4, 3).some((op) => op.kind === 'kill' || (op.kind === 'reconnect' && op.node !== undefined))).toBe(false);
    const plan = planOperations(7, 2000, 4, 3, { nodes: 3 });
    const kills = plan.filter((op) => op.kind === 'kill');
    expect(kills.length).toBeGreaterThan(5);
    expect(new Set(kills.map((op) => op.node))).toEqual(new Set([1, 2]));
    const reconnectNodes = new Set(plan.flatMap((op) => (op.kind === 'reconnect' ? [op.node] : [])));
    expect(reconnectNodes).toEqual(new Set([0, 1, 2]));
  });
});
