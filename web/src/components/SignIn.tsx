import { useState } from 'preact/hooks';
import { t } from '../i18n.js';
import type { AppStore } from '../store.js';

export function SignIn({ store, message }: { store: AppStore; message: string | null }) {
  const [token, setToken] = useState('');
  const [remember, setRemember] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!token.trim()) return;
    setBusy(true);
    const problem = await store.signIn(token.trim(), remember);
    setBusy(false);
    if (problem) setError(problem);
  };

  return (
    <main class="signin">
      <form class="signin-card" onSubmit={submit}>
        <img src="/favicon.svg" alt="" width={48} height={48} />
        <h1>{t.signInTitle}</h1>
        <p class="muted">{t.signInText}</p>
        {(error ?? message) && (
          <p class="form-error" role="alert">
            {error ?? message}
          </p>
        )}
        <label class="field">
          <span>{t.token}</span>
          <input
            type="password"
            autoComplete="current-password"
            aria-label="API token"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            autoFocus
          />
        </label>
        <label class="check">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember((e.target as HTMLInputElement).checked)} />
          <span>{t.remember}</span>
        </label>
        <button class="primary" type="submit" disabled={busy || !token.trim()}>
          {t.signIn}
        </button>
      </form>
    </main>
  );
}
