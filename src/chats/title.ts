/** Longest automatic title, in user-perceived characters (graphemes: an emoji or a CJK character counts once). */
export const MAX_AUTO_TITLE_GRAPHEMES = 60;

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * A chat's title from its first message, at once and without a model: the first line that has text, with Markdown
 * noise removed (headings, quotes, list markers, emphasis, code fences and ticks, link targets, images), spaces
 * collapsed, and cut to MAX_AUTO_TITLE_GRAPHEMES (at a word boundary when the text has spaces; CJK text has none
 * and is cut between characters, never inside one). Undefined when nothing is left (e.g. an image alone).
 */
export function titleFromMessage(content: string): string | undefined {
  const line = content
    .replace(/```[^\n]*\n?/g, '\n')
    .split('\n')
    .map(stripMarkdown)
    .find((l) => l.length > 0);
  return line === undefined ? undefined : capTitle(line);
}

function stripMarkdown(line: string): string {
  return line
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1') // images: their alt text
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // links: their text
    .replace(/^\s{0,3}(#{1,6}\s+|>\s*|[-*+]\s+(\[[ xX]\]\s+)?|\d+[.)]\s+)+/, '') // headings, quotes, list items
    .replace(/(\*\*|__|~~|`+)/g, '')
    .replace(/(^|\s)[*_](\S)/g, '$1$2')
    .replace(/(\S)[*_](?=\s|$|[.,;:!?])/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Cuts a title to MAX_AUTO_TITLE_GRAPHEMES graphemes, with an ellipsis when it was longer. */
export function capTitle(text: string, max = MAX_AUTO_TITLE_GRAPHEMES): string {
  const graphemes = [...segmenter.segment(text.trim())].map((s) => s.segment);
  if (graphemes.length <= max) return graphemes.join('');
  let cut = graphemes.slice(0, max - 1).join('');
  const lastSpace = cut.lastIndexOf(' ');
  // Cut at the last word boundary if it keeps most of the text (Latin scripts); CJK has no spaces to cut at.
  if (lastSpace > cut.length * 0.6) cut = cut.slice(0, lastSpace);
  return `${cut.trimEnd().replace(/[\s.,;:!?，。、；：！？-]+$/u, '')}…`;
}
