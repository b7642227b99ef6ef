// Encoding a message Plan as Anthropic streaming events (and as one JSON message for stream:false).
// Event shapes follow the public Messages streaming API so the real CLI parses them unmodified.

import { randomUUID } from 'node:crypto';
import { estimateTokens } from './conversation.js';
import type { BlockPlan, Chunk, MessagePlan } from './script.js';

export interface SseEvent {
  event: string;
  data: unknown;
}

/** One timed step of a stream: wait delayMs, then emit an event or cut the connection. */
export type Step =
  | { delayMs: number; kind: 'event'; make: () => SseEvent }
  | { delayMs: number; kind: 'disconnect' }
  /** Nothing more, the connection held open until the client gives up. */
  | { delayMs: number; kind: 'stall' }
  /** Raw bytes that are not a valid SSE event (data that is not JSON), then the end of the response. */
  | { delayMs: number; kind: 'raw'; text: string };

export function encodeSse({ event, data }: SseEvent): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function errorBody(errorType: string, message: string): object {
  return { type: 'error', error: { type: errorType, message } };
}

const newId = (prefix: string): string => `${prefix}${randomUUID().replaceAll('-', '').slice(0, 24)}`;
const resolveChunk = (c: Chunk): string => (typeof c === 'function' ? c() : c);

/** Tool input JSON sent in a few pieces, as the real API streams partial JSON. */
function jsonPieces(input: Record<string, unknown>): string[] {
  const json = JSON.stringify(input);
  const size = Math.max(8, Math.ceil(json.length / 3));
  const pieces: string[] = [];
  for (let i = 0; i < json.length; i += size) pieces.push(json.slice(i, i + size));
  return pieces;
}

interface Context {
  model: string;
  inputTokens: number;
}

function usageStart(inputTokens: number): object {
  return { input_tokens: inputTokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
}

/** The whole stream for a message plan, including any planned cut. */
export function streamSteps(plan: MessagePlan, ctx: Context): Step[] {
  const id = newId('msg_fake_');
  let outputText = '';
  const steps: Step[] = [];
  const now = (make: () => SseEvent): void => void steps.push({ delayMs: 0, kind: 'event', make });
  let deltas = 0;
  // Returns false once the planned cut has been emitted: nothing may follow it.
  const delta = (make: () => SseEvent): boolean => {
    if (plan.cut && deltas >= plan.cut.afterDeltas) return false;
    steps.push({ delayMs: plan.deltaDelayMs, kind: 'event', make });
    deltas += 1;
    return true;
  };

  now(() => ({
    event: 'message_start',
    data: {
      type: 'message_start',
      message: {
        id, type: 'message', role: 'assistant', model: ctx.model, content: [],
        stop_reason: null, stop_sequence: null, usage: usageStart(ctx.inputTokens),
      },
    },
  }));
  now(() => ({ event: 'ping', data: { type: 'ping' } }));

  let cutHit = false;
  plan.blocks.forEach((block, index) => {
    if (cutHit) return;
    now(() => ({ event: 'content_block_start', data: { type: 'content_block_start', index, content_block: startBlock(block) } }));
    const pieces: Array<() => SseEvent> = block.type === 'text'
      ? block.chunks.map((c) => () => {
          const t = resolveChunk(c);
          outputText += t;
          return { event: 'content_block_delta', data: { type: 'content_block_delta', index, delta: { type: 'text_delta', text: t } } };
        })
      : jsonPieces(block.input).map((p) => () => {
          outputText += p;
          return { event: 'content_block_delta', data: { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: p } } };
        });
    for (const make of pieces) {
      if (!delta(make)) { cutHit = true; return; }
    }
    now(() => ({ event: 'content_block_stop', data: { type: 'content_block_stop', index } }));
  });

  if (plan.cut && (cutHit || deltas >= plan.cut.afterDeltas)) {
    if (plan.cut.how === 'disconnect') steps.push({ delayMs: plan.deltaDelayMs, kind: 'disconnect' });
    else if (plan.cut.how === 'stall') steps.push({ delayMs: plan.deltaDelayMs, kind: 'stall' });
    else if (plan.cut.how === 'malformed') {
      steps.push({ delayMs: plan.deltaDelayMs, kind: 'raw', text: 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_del\n\n' });
    } else now(() => ({ event: 'error', data: errorBody('overloaded_error', 'Overloaded') }));
    return steps;
  }

  now(() => ({
    event: 'message_delta',
    data: {
      type: 'message_delta',
      delta: { stop_reason: plan.stopReason, stop_sequence: null },
      usage: { output_tokens: estimateTokens(outputText) },
    },
  }));
  now(() => ({ event: 'message_stop', data: { type: 'message_stop' } }));
  return steps;
}

function startBlock(block: BlockPlan): object {
  return block.type === 'text'
    ? { type: 'text', text: '' }
    : { type: 'tool_use', id: newId('toolu_fake_'), name: block.name, input: {} };
}

/** The same plan as one non-streaming message (delays and cuts are not applied here). */
export function jsonMessage(plan: MessagePlan, ctx: Context): object {
  const content = plan.blocks.map((block) =>
    block.type === 'text'
      ? { type: 'text', text: block.chunks.map(resolveChunk).join('') }
      : { type: 'tool_use', id: newId('toolu_fake_'), name: block.name, input: block.input },
  );
  return {
    id: newId('msg_fake_'),
    type: 'message',
    role: 'assistant',
    model: ctx.model,
    content,
    stop_reason: plan.stopReason,
    stop_sequence: null,
    usage: { ...usageStart(ctx.inputTokens), output_tokens: estimateTokens(content) },
  };
}
