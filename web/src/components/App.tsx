import { useCallback, useEffect, useState } from 'preact/hooks';
import { t } from '../i18n.js';
import type { AppStore } from '../store.js';
import { Conversation } from './Conversation.js';
import { StoredImageLoader } from './Messages.js';
import { Sidebar } from './Sidebar.js';
import { SignIn } from './SignIn.js';

/** Re-renders on store changes (the store batches them per animation frame). */
export function useStore(store: AppStore) {
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
  return store.state;
}

export function App({ store }: { store: AppStore }) {
  const state = useStore(store);
  const [drawerOpen, setDrawerOpen] = useState(false);
  const closeDrawer = useCallback(() => setDrawerOpen(false), []);
  const openDrawer = useCallback(() => setDrawerOpen(true), []);
  const chat = state.chats.find((c) => c.id === state.selectedId) ?? null;

  useEffect(() => {
    document.title = chat ? `${chat.title} · ${t.appName}` : t.appName;
  }, [chat?.title]);

  if (state.auth.kind === 'checking') return <div class="splash" aria-busy="true" />;
  if (state.auth.kind === 'signed-out') return <SignIn store={store} message={state.auth.message} />;

  const view = state.selectedId ? state.views.get(state.selectedId) ?? null : null;
  return (
    <StoredImageLoader.Provider value={store.api.imageObjectUrl}>
      <div class={`shell${drawerOpen ? ' drawer-open' : ''}`}>
        {state.info?.demo && (
          <div class="demo-banner" role="note">
            {t.demoBanner}
          </div>
        )}
        <div class="layout">
          <Sidebar store={store} state={state} onNavigate={closeDrawer} />
          {drawerOpen && <button class="scrim" aria-label={t.closeMenu} onClick={() => setDrawerOpen(false)} />}
          <Conversation
            store={store}
            state={state}
            chat={chat}
            view={view}
            onOpenMenu={openDrawer}
          />
        </div>
        {state.toast && (
          <div class="toast" role="alert" onClick={() => store.dismissToast()}>
            <span>{state.toast}</span>
            <button class="icon-btn" aria-label="Dismiss" onClick={() => store.dismissToast()}>
              ×
            </button>
          </div>
        )}
      </div>
    </StoredImageLoader.Provider>
  );
}
