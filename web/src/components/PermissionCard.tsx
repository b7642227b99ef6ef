import { useEffect, useState } from 'preact/hooks';
import type { PermissionPrompt } from '../chat-view.js';
import { names, t } from '../i18n.js';
import { IconShield } from './icons.js';

/** What the tool will do, as the user must judge it: the command, or the file and the change. */
function Detail({ prompt }: { prompt: PermissionPrompt }) {
  const input = prompt.input;
  const str = (k: string) => (typeof input[k] === 'string' ? (input[k] as string) : null);
  if (str('command') !== null) {
    return (
      <>
        {str('description') && <p class="perm-desc">{str('description')}</p>}
        <pre class="perm-code">
          <span class="prompt-sign">$ </span>
          {str('command')}
        </pre>
      </>
    );
  }
  if (str('file_path') !== null && (str('old_string') !== null || str('new_string') !== null)) {
    return (
      <>
        <p class="perm-file">{str('file_path')}</p>
        <pre class="perm-code diff">
          {(str('old_string') ?? '').split('\n').map((l) => `- ${l}\n`)}
          {(str('new_string') ?? '').split('\n').map((l) => `+ ${l}\n`)}
        </pre>
      </>
    );
  }
  if (str('file_path') !== null && str('content') !== null) {
    return (
      <>
        <p class="perm-file">{str('file_path')}</p>
        <pre class="perm-code">{str('content')}</pre>
      </>
    );
  }
  return <pre class="perm-code">{JSON.stringify(input, null, 2)}</pre>;
}

export function PermissionCard({
  prompt,
  onAnswer,
}: {
  prompt: PermissionPrompt;
  onAnswer: (allow: boolean, remember: boolean) => void;
}) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const left = Math.max(0, Math.ceil((prompt.expiresAt - now) / 1000));
  const ruleId = `perm-rule-${prompt.requestId}`;
  return (
    <section class="perm-card" role="group" aria-label={`Permission: ${prompt.toolName}`} data-request-id={prompt.requestId}>
      <header>
        <IconShield />
        <span>
          {t.permissionTitle} <strong>{prompt.toolName}</strong>
        </span>
        <span class={`perm-timer${left < 15 ? ' urgent' : ''}`}>{t.expiresIn(left)}</span>
      </header>
      <Detail prompt={prompt} />
      <div class="perm-actions">
        <button class="primary" aria-label={names.allow} onClick={() => onAnswer(true, false)}>
          {t.allow}
        </button>
        <button
          class="secondary"
          aria-label={names.allowChat}
          aria-describedby={prompt.rememberRule ? ruleId : undefined}
          onClick={() => onAnswer(true, true)}
        >
          {t.allowChat}
        </button>
        <button class="ghost danger-text" aria-label={names.deny} onClick={() => onAnswer(false, false)}>
          {t.deny}
        </button>
      </div>
      {prompt.rememberRule && <RememberScope id={ruleId} prompt={prompt} />}
    </section>
  );
}

/** What "Allow for this chat" would allow from then on: the remembered rule, never the whole tool. */
function RememberScope({ id, prompt }: { id: string; prompt: PermissionPrompt }) {
  const rule = prompt.rememberRule!;
  const kind = t.ruleKinds[rule.kind];
  const pattern = rule.pattern.length > 300 ? `${rule.pattern.slice(0, 300)}…` : rule.pattern;
  return (
    <p class="perm-remember" id={id} title={rule.description}>
      {t.rememberScope}{' '}
      {kind ? (
        <>
          {rule.tool_name} {kind} <code>{pattern}</code>
        </>
      ) : (
        rule.description
      )}
    </p>
  );
}
