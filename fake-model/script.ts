// Deciding the reply from the conversation. The result is a Plan (data, no I/O) that
// server.ts plays either as SSE or as one JSON message.

import {
  earlierUserTexts,
  imagesOf,
  lastUserMessage,
  toolResultTexts,
  transcriptOf,
  userText,
  type MessagesRequest,
} from './conversation.js';

/** A text chunk may be computed when it is sent (/stamp needs the send time, not the plan time). */
export type Chunk = string | (() => string);

export type BlockPlan =
  | { type: 'text'; chunks: Chunk[] }
  | { type: 'tool_use'; name: string; input: Record<string, unknown> };

export type Plan =
  /** `retryAfterS`: the `retry-after` header (seconds); 429 gets `0` unless set. */
  | { kind: 'http_error'; status: number; errorType: string; message: string; retryAfterS?: number }
  | { kind: 'hang' }
  | {
      kind: 'message';
      blocks: BlockPlan[];
      stopReason: 'end_turn' | 'tool_use';
      /** Delay before each delta, ms. */
      deltaDelayMs: number;
      /**
       * Cut the stream after this many deltas: an SSE error event, a dropped socket, silence with the connection
       * held open (a stall), or an event whose data is not JSON (malformed SSE).
       */
      cut?: { afterDeltas: number; how: 'sse_error' | 'disconnect' | 'stall' | 'malformed' };
    };

export type MessagePlan = Extract<Plan, { kind: 'message' }>;

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

export function errorTypeFor(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

// Small delay so the demo visibly streams while tests stay fast.
const DEFAULT_DELTA_MS = 5;

function text(chunks: Chunk[], deltaDelayMs = DEFAULT_DELTA_MS): MessagePlan {
  return { kind: 'message', blocks: [{ type: 'text', chunks }], stopReason: 'end_turn', deltaDelayMs };
}

function toolUse(name: string, input: Record<string, unknown>): MessagePlan {
  return { kind: 'message', blocks: [{ type: 'tool_use', name, input }], stopReason: 'tool_use', deltaDelayMs: DEFAULT_DELTA_MS };
}

/** Split into chunks of a few words, keeping whitespace, so a reply arrives as several deltas. */
export function wordChunks(s: string, wordsPerChunk = 3): string[] {
  const words = s.match(/\S+\s*|\s+/g) ?? [];
  const chunks: string[] = [];
  for (let i = 0; i < words.length; i += wordsPerChunk) {
    chunks.push(words.slice(i, i + wordsPerChunk).join(''));
  }
  return chunks;
}

function intArg(value: string | undefined, fallback: number): number {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

function numbered(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1} `);
}

/** Wall-clock ms with sub-ms fraction; same clock across processes on one machine. */
function stamp(): string {
  return `<t>${(performance.timeOrigin + performance.now()).toFixed(3)}</t>`;
}

/** Plan for a leading `/directive rest...`, or undefined if the text has none we know. */
function directivePlan(name: string, rest: string, request: MessagesRequest): Plan | undefined {
  const args = rest.split(/\s+/).filter(Boolean);
  switch (name) {
    case 'slow':
      return text(numbered('chunk', intArg(args[0], 20)), intArg(args[1], 50));
    case 'stamp': {
      const n = intArg(args[0], 20);
      return text(Array.from({ length: n }, () => stamp), intArg(args[1], 50));
    }
    case 'flood': {
      // Large deltas as fast as possible: for tests of clients that cannot keep up.
      const chunk = 'x'.repeat(intArg(args[1], 10_000));
      return text(Array.from({ length: intArg(args[0], 100) }, () => chunk), 0);
    }
    case 'bash':
      return toolUse('Bash', { command: rest, description: 'run command' });
    case 'bashslow':
      // Not `sleep S`: the CLI refuses a long plain sleep as a tool command ("Blocked: sleep 30 ...").
      return toolUse('Bash', {
        command: `timeout ${intArg(args[0], 30)} tail -f /dev/null; echo slept`,
        description: 'run command',
      });
    case 'tool': {
      const toolName = args[0] ?? '';
      if (!toolName) return text(['Bad /tool directive: usage is /tool NAME {"json":"input"}']);
      const json = rest.slice(rest.indexOf(toolName) + toolName.length).trim() || '{}';
      try {
        const input: unknown = JSON.parse(json);
        if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('input must be a JSON object');
        return toolUse(toolName, input as Record<string, unknown>);
      } catch (err) {
        return text([`Bad /tool directive: ${(err as Error).message}`]);
      }
    }
    case 'tools': {
      // Several tool calls in one message: the CLI runs them all and answers with one tool_result each.
      const usage = 'Bad /tools directive: usage is /tools [{"name":"NAME","input":{...}}, ...]';
      try {
        const calls: unknown = JSON.parse(rest);
        const valid = (c: unknown): c is { name: string; input: Record<string, unknown> } =>
          typeof c === 'object' && c !== null && typeof (c as { name?: unknown }).name === 'string' &&
          typeof (c as { input?: unknown }).input === 'object' && (c as { input?: unknown }).input !== null;
        if (!Array.isArray(calls) || calls.length === 0 || !calls.every(valid)) return text([usage]);
        return {
          kind: 'message',
          blocks: calls.map((c) => ({ type: 'tool_use' as const, name: c.name, input: c.input })),
          stopReason: 'tool_use',
          deltaDelayMs: DEFAULT_DELTA_MS,
        };
      } catch {
        return text([usage]);
      }
    }
    case 'error': {
      const parsed = intArg(args[0], 500);
      const status = parsed >= 400 && parsed <= 599 ? parsed : 500;
      const message = args.slice(1).join(' ') || `Fake error ${status}`;
      return { kind: 'http_error', status, errorType: errorTypeFor(status), message };
    }
    case 'midstream-error':
      // One chunk more than the cut, so the cut lands mid-block like a real overload would.
      return { ...text(numbered('part', 4)), cut: { afterDeltas: 3, how: 'sse_error' } };
    case 'disconnect': {
      const n = intArg(args[0], 3);
      return { ...text(numbered('part', n + 1)), cut: { afterDeltas: n, how: 'disconnect' } };
    }
    case 'hang':
      return { kind: 'hang' };
    case 'overloaded': {
      // A storm answer: 529 (or 429) telling the client when to come back.
      const parsed = intArg(args[0], 529);
      const status = parsed >= 400 && parsed <= 599 ? parsed : 529;
      return { kind: 'http_error', status, errorType: errorTypeFor(status), message: 'Overloaded', retryAfterS: intArg(args[1], 1) };
    }
    case 'stall': {
      const n = intArg(args[0], 2);
      return { ...text(numbered('part', n + 1)), cut: { afterDeltas: n, how: 'stall' } };
    }
    case 'malformed': {
      const n = intArg(args[0], 2);
      return { ...text(numbered('part', n + 1)), cut: { afterDeltas: n, how: 'malformed' } };
    }
    case 'images': {
      const images = imagesOf(lastUserMessage(request));
      const list = images.map((i) => `${i.mediaType} ${i.bytes} bytes`).join(', ');
      return text([`Saw ${images.length} image(s)${list ? `: ${list}` : ''}`]);
    }
    case 'recall': {
      const earlier = earlierUserTexts(request);
      return text([`Earlier: ${earlier.length ? earlier.join(' | ') : '(nothing)'}`]);
    }
    case 'received':
      return text([`Received:\n${transcriptOf(request)}`]);
    case 'multi':
      return {
        kind: 'message',
        blocks: [{ type: 'text', chunks: ['First ', 'block.'] }, { type: 'text', chunks: ['Second ', 'block.'] }],
        stopReason: 'end_turn',
        deltaDelayMs: DEFAULT_DELTA_MS,
      };
    default:
      return undefined;
  }
}

/**
 * Side requests the CLI makes besides conversation turns, recognised positively: setModel()'s
 * probe (no tools, `max_tokens: 1`, "Hi") and the session title (`tools: []`, asks for JSON via
 * `output_config.format`, quotes the user's text). "No tools" alone is not enough: the SDK's
 * `tools: []` option makes real turns tool-less too. Directives never apply to side requests,
 * so a title request quoting `/error 500` does not fail.
 */
export function isConversationTurn(request: MessagesRequest): boolean {
  if (Array.isArray(request.tools) && request.tools.length > 0) return true;
  const probe = typeof request.max_tokens === 'number' && request.max_tokens <= 1;
  return !probe && request.output_config?.format === undefined;
}

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
}

/** A minimal value of a JSON schema: required properties only, placeholder leaves. */
function sampleOf(schema: JsonSchema | undefined, name = 'value'): unknown {
  switch (schema?.type) {
    case 'object':
      return Object.fromEntries((schema.required ?? []).map((key) => [key, sampleOf(schema.properties?.[key], key)]));
    case 'array': return [];
    case 'number': case 'integer': return 0;
    case 'boolean': return false;
    default: return `Fake ${name}`;
  }
}

/** Side requests that demand JSON (`output_config.format`, e.g. the title) get valid JSON. */
function sideReply(request: MessagesRequest): string {
  const format = request.output_config?.format;
  return format?.type === 'json_schema' ? JSON.stringify(sampleOf(format.schema as JsonSchema)) : 'OK.';
}

export function planReply(request: MessagesRequest): Plan {
  const last = lastUserMessage(request);
  if (!isConversationTurn(request)) return text([sideReply(request)], 0);

  // A message with tool results can also carry what the user typed next (the CLI folds a message
  // sent after an interrupted tool call into it): the user's words win, the results are stale.
  const said = userText(last);
  const results = toolResultTexts(last);
  if (!said && results.length > 0) return text(wordChunks(`Tool result: ${results.join('\n').trim()}`));

  const match = /^\/([\w-]+)(?:\s+([\s\S]*))?$/.exec(said);
  if (match) {
    const plan = directivePlan(match[1] ?? '', (match[2] ?? '').trim(), request);
    if (plan) return plan;
  }
  // "Echo: " first, then the user text in word groups: always at least two deltas.
  return text(['Echo: ', ...wordChunks(said)]);
}
