import { describe, expect, it } from 'vitest';
import { IMPORT_CONTEXT_MAX_CHARS, buildForkContext, buildImportContext } from '../../src/chats/import-context.js';
import type { ExportedEntry } from '../../src/protocol/export.js';

const message = (role: 'user' | 'assistant', content: string, queryId: string, extra: Partial<ExportedEntry> = {}): ExportedEntry => ({
  type: 'message',
  id: `${role}-${content}`,
  role,
  content,
  status: 'complete',
  created_at: '2026-12-01T00:00:00.000Z',
  query_id: queryId,
  superseded: false,
  images: [],
  ...extra,
} as ExportedEntry);

const toolUse = (queryId: string, output: string): ExportedEntry => ({
  type: 'tool_use',
  id: `toolu_${queryId}`,
  query_id: queryId,
  name: 'Bash',
  input: { command: `echo ${output}` },
  result: output,
  is_error: false,
  created_at: '2026-12-01T00:00:00.000Z',
  completed_at: '2026-12-01T00:00:00.000Z',
  superseded: false,
});

describe('the transcript an imported chat carries to the model', () => {
  it('holds messages, statuses, images by name and tool calls, and leaves out superseded answers with their tools', () => {
    const text = buildImportContext([
      message('user', 'first', 'q1', { images: [{ media_type: 'image/png', base64: 'iVBORw0KGgo=' }] }),
      toolUse('q1', 'replaced-output'),
      message('assistant', 'replaced answer', 'q1', { superseded: true }),
      toolUse('q2', 'kept-output'),
      message('assistant', 'kept answer', 'q2', { status: 'interrupted' }),
    ])!;
    expect(text.startsWith('<imported-conversation>\n')).toBe(true);
    expect(text.endsWith('</imported-conversation>\n\n')).toBe(true);
    expect(text).toContain('[user] first\n[image: image/png, not included]');
    expect(text).toContain('[tool call Bash] input: {"command":"echo kept-output"}\n[tool result] kept-output');
    expect(text).toContain('[assistant (interrupted)] kept answer');
    expect(text).not.toContain('replaced');
    expect(text).not.toContain('iVBORw0KGgo');
  });

  it('is nothing for nothing', () => {
    expect(buildImportContext([])).toBeUndefined();
    expect(buildImportContext([message('assistant', 'gone', 'q1', { superseded: true })])).toBeUndefined();
  });

  it('keeps the newest part of a long conversation and says what it left out', () => {
    const entries = Array.from({ length: 30 }, (_, i) => message('user', `${i}:${'x'.repeat(10_000)}`, `q${i}`));
    const text = buildImportContext(entries)!;
    expect(text.length).toBeLessThan(IMPORT_CONTEXT_MAX_CHARS + 1_000);
    expect(text).toMatch(/\[\d+ earlier part\(s\) of the conversation left out for length\]/);
    expect(text).toContain('[user] 29:');
    expect(text).not.toContain('[user] 0:');
  });

  it('a fork that ends with a question leaves the question to the fork’s next answer', () => {
    const answered = [message('user', 'q', 'q1'), message('assistant', 'a', 'q1')];
    expect(buildForkContext([...answered, message('user', 'next', 'q2')])).toBe(buildImportContext(answered));
    expect(buildForkContext([message('user', 'only', 'q1')])).toBeUndefined();
  });
});
