import { describe, expect, it } from 'vitest';
import { capTitle, MAX_AUTO_TITLE_GRAPHEMES, titleFromMessage } from '../../src/chats/title.js';

describe('titleFromMessage', () => {
  it('takes the first line with text, without Markdown noise', () => {
    expect(titleFromMessage('\n\n## **Fix** the `build` script\nmore details')).toBe('Fix the build script');
    expect(titleFromMessage('> - [ ] read [the docs](https://example.com) _today_')).toBe('read the docs today');
    expect(titleFromMessage('```ts\nconst x = 1;\n```')).toBe('const x = 1;');
    expect(titleFromMessage('1. ![diagram](a.png) explained')).toBe('diagram explained');
  });

  it('gives nothing for a message without text', () => {
    expect(titleFromMessage('   \n  ')).toBeUndefined();
  });

  it('cuts long text at a word boundary, and CJK text between characters, never inside one', () => {
    const latin = titleFromMessage('word '.repeat(40))!;
    expect(latin.endsWith('…')).toBe(true);
    expect([...latin].length).toBeLessThanOrEqual(MAX_AUTO_TITLE_GRAPHEMES);
    expect(latin).not.toContain('wor…');

    const chinese = titleFromMessage('请'.repeat(100) + '\n第二行')!;
    expect(chinese).toBe(`${'请'.repeat(MAX_AUTO_TITLE_GRAPHEMES - 1)}…`);

    const emoji = capTitle('👩‍👩‍👧'.repeat(10), 5);
    expect(emoji).toBe(`${'👩‍👩‍👧'.repeat(4)}…`);
  });
});
