import { capTitle } from './title.js';

export interface TitleModelSettings {
  model: string;
  /** The agent's credentials and endpoint: the same account pays for titles. */
  apiKey?: string;
  authToken?: string;
  baseUrl?: string;
  timeoutMs?: number;
}

const TITLE_SCHEMA = {
  type: 'object',
  properties: { title: { type: 'string', description: 'A short title for the conversation, at most 6 words' } },
  required: ['title'],
  additionalProperties: false,
};

/**
 * Asks a model for a chat's title: one non-streaming Messages API call (not the Agent SDK: no CLI process, no tools,
 * no session for a one-line answer), with structured output so the answer is the title and nothing else. Failures
 * give undefined: a chat keeps the title it has.
 */
export class TitleModel {
  constructor(private readonly settings: TitleModelSettings) {}

  async propose(userText: string, answerText: string): Promise<string | undefined> {
    const { model, apiKey, authToken, baseUrl = 'https://api.anthropic.com', timeoutMs = 30_000 } = this.settings;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };
    if (apiKey) headers['x-api-key'] = apiKey;
    else if (authToken) headers.authorization = `Bearer ${authToken}`;
    const res = await fetch(new URL('/v1/messages', baseUrl), {
      method: 'POST',
      headers,
      signal: AbortSignal.timeout(timeoutMs),
      body: JSON.stringify({
        model,
        max_tokens: 60,
        system:
          'You name conversations. Reply with a short, specific title (at most 6 words, no quotes, no final period) ' +
          'in the language of the user message.',
        messages: [
          {
            role: 'user',
            content: `User message:\n${userText.slice(0, 4_000)}\n\nAssistant answer:\n${answerText.slice(0, 4_000)}`,
          },
        ],
        output_config: { format: { type: 'json_schema', schema: TITLE_SCHEMA } },
      }),
    });
    if (!res.ok) throw new Error(`title model answered HTTP ${res.status}`);
    const body = (await res.json()) as { content?: { type: string; text?: string }[] };
    const text = (body.content ?? []).map((b) => (b.type === 'text' ? (b.text ?? '') : '')).join('').trim();
    let title = text;
    try {
      const parsed = JSON.parse(text) as { title?: unknown };
      if (typeof parsed.title === 'string') title = parsed.title;
    } catch {
      // Not JSON (a model without structured output): the text itself is the title.
    }
    title = title.replace(/^["'«“]+|["'»”.]+$/gu, '').replace(/\s+/g, ' ').trim();
    return title.length > 0 ? capTitle(title) : undefined;
  }
}
