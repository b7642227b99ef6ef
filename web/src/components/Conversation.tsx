import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Chat, ImageInput } from '../../../src/protocol/chat.js';
import type { ChatView } from '../chat-view.js';
import { t } from '../i18n.js';
import type { AppState, AppStore } from '../store.js';
import { Composer, type ComposerHandle } from './Composer.js';
import { IconDown, IconMenu } from './icons.js';
import { ItemView } from './Messages.js';
import { PermissionCard } from './PermissionCard.js';

/** Within this distance of the bottom the view follows new text; scrolled further up, it stays put. */
const STICK_PX = 80;
/** Closer than this to the top, older messages are paged in. */
const LOAD_OLDER_PX = 400;

export function Conversation({
  store,
  state,
  chat,
  view,
  onOpenMenu,
}: {
  store: AppStore;
  state: AppState;
  chat: Chat | null;
  view: ChatView | null;
  onOpenMenu: () => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [showJump, setShowJump] = useState(false);
  const [dragging, setDragging] = useState(false);
  const composer = useRef<ComposerHandle | null>(null);
  const prev = useRef<{ firstKey: string | undefined; height: number; top: number; chatId: string | null }>({
    firstKey: undefined,
    height: 0,
    top: 0,
    chatId: null,
  });
  const items = view?.items ?? [];
  const chatId = view?.chatId ?? null;
  const processing = view?.processing ?? false;

  // Keep the reader's place: follow the bottom when stuck to it, keep the visible text still when older
  // messages are put in front.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const p = prev.current;
    const firstKey = items[0]?.key;
    if (p.chatId !== chatId) {
      stick.current = true;
      el.scrollTop = el.scrollHeight;
    } else if (p.firstKey !== undefined && firstKey !== p.firstKey && el.scrollHeight > p.height && !stick.current) {
      el.scrollTop = p.top + (el.scrollHeight - p.height);
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
    prev.current = { firstKey, height: el.scrollHeight, top: el.scrollTop, chatId };
  });

  useEffect(() => {
    setShowJump(false);
  }, [chatId]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX;
    stick.current = atBottom;
    prev.current.top = el.scrollTop;
    prev.current.height = el.scrollHeight;
    if (showJump === atBottom) setShowJump(!atBottom);
    if (el.scrollTop < LOAD_OLDER_PX && view?.hasMore && chatId) void store.loadOlder(chatId);
  };

  const jump = () => {
    const el = scroller.current;
    if (!el) return;
    stick.current = true;
    el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
    setShowJump(false);
  };

  // A page reload or a short chat may leave older messages above with nothing to scroll: fetch them at once.
  useEffect(() => {
    const el = scroller.current;
    if (el && view?.hasMore && chatId && el.scrollHeight <= el.clientHeight + LOAD_OLDER_PX) void store.loadOlder(chatId);
  }, [view?.hasMore, view?.oldestMessageId, chatId]);

  // Esc stops the running answer from anywhere in the conversation (inputs elsewhere keep their own Esc).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || !processing || !chatId || e.defaultPrevented) return;
      const target = e.target as HTMLElement | null;
      if (target && target.closest('.sidebar')) return;
      store.stop(chatId);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [processing, chatId]);

  const onSend = async (content: string, images: ImageInput[]) => {
    stick.current = true;
    let id = chatId;
    if (!id) {
      const firstLine = content.split('\n')[0]?.trim() ?? '';
      id = await store.newChat(firstLine ? firstLine.slice(0, 60) : undefined);
      if (!id) return false;
    }
    return store.send(id, content, images);
  };

  const onCopy = (e: MouseEvent) => {
    const button = (e.target as HTMLElement).closest<HTMLButtonElement>('[data-copy-code]');
    if (!button) return;
    const code = button.closest('.code-block')?.querySelector('pre')?.textContent ?? '';
    void copyText(code).then(() => {
      button.textContent = t.copied;
      setTimeout(() => (button.textContent = t.copy), 1500);
    });
  };

  const empty = !view || (view.loaded && items.length === 0);
  return (
    <main
      class={`conversation${dragging ? ' dragging' : ''}`}
      onDragOver={(e) => {
        if (e.dataTransfer?.types.includes('Files')) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target || !(e.currentTarget as HTMLElement).contains(e.relatedTarget as Node)) setDragging(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        if (e.dataTransfer?.files) composer.current?.addFiles(e.dataTransfer.files);
      }}
    >
      <header class="topbar">
        <button class="icon-btn menu-btn" aria-label={t.menu} onClick={onOpenMenu}>
          <IconMenu />
        </button>
        <h1 class="topbar-title">{chat?.title ?? t.appName}</h1>
        {processing && <span class="topbar-status">{t.answering}</span>}
      </header>
      <div class="scroller" ref={scroller} onScroll={onScroll} onClick={onCopy}>
        <div class="thread" aria-live="off">
          {view?.hasMore && <div class="older">{t.loadingOlder}</div>}
          {view && !view.loaded && <div class="loading-dots" aria-label="Loading" />}
          {empty ? (
            <Welcome demo={state.info?.demo ?? false} />
          ) : (
            items.map((item) => <ItemView key={item.key} item={item} />)
          )}
          {view && view.prompts.length > 0 && (
            <div class="prompts">
              {view.prompts.map((p) => (
                <PermissionCard
                  key={p.requestId}
                  prompt={p}
                  onAnswer={(allow, remember) => store.answerPermission(view.chatId, p.requestId, allow, remember)}
                />
              ))}
            </div>
          )}
        </div>
      </div>
      {showJump && (
        <button class="jump" onClick={jump}>
          <IconDown />
          {t.jumpToLatest}
        </button>
      )}
      <Composer
        limits={state.info?.limits ?? null}
        processing={processing}
        connected={state.connection.kind === 'open'}
        chatKey={chatId ?? ''}
        onSend={onSend}
        onStop={() => chatId && store.stop(chatId)}
        handle={composer}
      />
      {dragging && <div class="drop-overlay">{t.dropImages}</div>}
    </main>
  );
}

function Welcome({ demo }: { demo: boolean }) {
  return (
    <div class="welcome">
      <img src="/favicon.svg" alt="" width={56} height={56} />
      <h2>{t.welcomeTitle}</h2>
      <p>{t.welcomeText}</p>
      {demo && <p class="hint">{t.demoHints}</p>}
    </div>
  );
}

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}
