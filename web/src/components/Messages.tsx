import { createContext } from 'preact';
import { memo } from 'preact/compat';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { ImageRef, Item } from '../chat-view.js';
import type { PendingMessage } from '../outbox.js';
import { t } from '../i18n.js';
import { renderMarkdown, renderStreamingMarkdown } from '../markdown.js';
import { IconChevron, IconTool } from './icons.js';

/** Turns a stored image's route into something an `<img>` can show (the API's credentials go with the fetch). */
export const StoredImageLoader = createContext<(path: string) => Promise<string>>((path) => Promise.resolve(path));

function MessageImage({ image }: { image: ImageRef }) {
  const load = useContext(StoredImageLoader);
  const [src, setSrc] = useState<string | null>(image.stored ? null : image.src);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!image.stored) return;
    let live = true;
    load(image.src).then(
      (url) => live && setSrc(url),
      () => live && setFailed(true),
    );
    return () => {
      live = false;
    };
  }, [image.src]);
  if (src) return <img src={src} alt="" loading="lazy" />;
  return <span class={`img-placeholder${failed ? ' failed' : ''}`} aria-hidden="true" />;
}

/** One conversation item. Memoized on the item object: only items an event replaced render again. */
export const ItemView = memo(function ItemView({ item }: { item: Item }) {
  switch (item.kind) {
    case 'user':
      return (
        <div class="msg user" data-role="user">
          <div class="bubble">
            {item.images.length > 0 && (
              <div class="msg-images">
                {item.images.map((img, i) => (
                  <MessageImage key={i} image={img} />
                ))}
              </div>
            )}
            {item.content && <div class="user-text">{item.content}</div>}
          </div>
        </div>
      );
    case 'assistant':
      return <AssistantMessage item={item} />;
    case 'tool':
      return <ToolCard item={item} />;
    case 'end':
      return <EndLine item={item} />;
    case 'notice':
      return (
        <div class={`notice notice-${item.code}`} role="note">
          {item.code === 'session_restarted' ? t.sessionRestarted : item.text}
        </div>
      );
  }
});

/** A message sent and not yet confirmed by the service (sent again after a reconnect when it was lost). */
export const PendingView = memo(function PendingView({ message }: { message: PendingMessage }) {
  return (
    <div class="msg user pending" data-role="user" data-pending="true">
      <div class="bubble">
        {message.images.length > 0 && (
          <div class="msg-images">
            {message.images.map((img, i) => (
              <MessageImage key={i} image={{ src: `data:${img.media_type};base64,${img.base64}` }} />
            ))}
          </div>
        )}
        {message.content && <div class="user-text">{message.content}</div>}
      </div>
      <span class="sending">
        {t.sending}
      </span>
    </div>
  );
});

function AssistantMessage({ item }: { item: Extract<Item, { kind: 'assistant' }> }) {
  const streaming = item.status === 'streaming';
  const html = streaming ? renderStreamingMarkdown(item.content) : renderMarkdown(item.content);
  return (
    <div class={`msg assistant status-${item.status}`} data-role="assistant" data-status={item.status}>
      <div class="avatar" aria-hidden="true" />
      <div class="assistant-body">
        {streaming && item.content === '' ? (
          <div class="thinking">{t.thinking}</div>
        ) : (
          <div class={`markdown${streaming ? ' streaming' : ''}`} dangerouslySetInnerHTML={{ __html: html }} />
        )}
        {item.status === 'interrupted' && <span class="badge warn">{t.interrupted}</span>}
        {item.status === 'error' && <span class="badge err">{t.errorAnswer}</span>}
      </div>
    </div>
  );
}

const RESULT_PREVIEW_CHARS = 1500;

/** The few input fields that say what a tool does; anything else is shown as JSON. */
export function toolSummary(name: string, input: Record<string, unknown>): string {
  const pick = (k: string) => (typeof input[k] === 'string' ? (input[k] as string) : null);
  return (
    pick('command') ?? pick('file_path') ?? pick('path') ?? pick('pattern') ?? pick('url') ?? pick('query') ?? (name ? '' : '')
  );
}

function ToolCard({ item }: { item: Extract<Item, { kind: 'tool' }> }) {
  const [expanded, setExpanded] = useState(false);
  const summary = toolSummary(item.name, item.input);
  const result = item.result ?? '';
  const long = result.length > RESULT_PREVIEW_CHARS;
  const shown = long && !expanded ? result.slice(0, RESULT_PREVIEW_CHARS) : result;
  const state = item.running ? 'running' : item.isError ? 'error' : 'done';
  return (
    <details class={`tool-card tool-${state}`} data-tool={item.name} data-state={state} open={item.running || item.isError}>
      <summary>
        <span class="tool-chevron">
          <IconChevron />
        </span>
        <IconTool />
        <span class="tool-name">{item.name}</span>
        {summary && <code class="tool-summary">{summary}</code>}
        <span class={`tool-state ${state}`}>
          {item.running && <span class="spinner" aria-hidden="true" />}
          {item.running ? t.running : item.isError ? t.failed : t.done}
        </span>
      </summary>
      <div class="tool-body">
        <div class="tool-label">{t.input}</div>
        <pre class="tool-pre">{formatInput(item.name, item.input)}</pre>
        {item.result !== null && (
          <>
            <div class="tool-label">{t.output}</div>
            <pre class={`tool-pre${item.isError ? ' is-error' : ''}`}>{shown || ' '}</pre>
            {long && (
              <button class="link-btn" onClick={() => setExpanded(!expanded)}>
                {expanded ? t.showLess : t.showAll(result.length)}
              </button>
            )}
          </>
        )}
      </div>
    </details>
  );
}

export function formatInput(name: string, input: Record<string, unknown>): string {
  if (name === 'Bash' && typeof input.command === 'string') return input.command;
  return JSON.stringify(input, null, 2);
}

function EndLine({ item }: { item: Extract<Item, { kind: 'end' }> }) {
  if (item.outcome === 'cancelled') return <div class="end-line warn">{t.stoppedNote}</div>;
  if (item.outcome === 'error')
    return (
      <div class="end-line err" role="alert">
        {t.errorAnswer}: {item.error}
      </div>
    );
  const parts = [item.cost !== null ? t.cost(item.cost) : null, item.duration !== null ? t.seconds(item.duration) : null].filter(Boolean);
  return <div class={`end-line${item.success ? '' : ' err'}`}>{parts.join(' · ')}</div>;
}
