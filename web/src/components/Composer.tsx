import { useEffect, useRef, useState } from 'preact/hooks';
import type { ImageInput, ImageMediaType } from '../../../src/protocol/chat.js';
import type { ServiceInfo } from '../../../src/protocol/rest.js';
import { names, t } from '../i18n.js';
import { IconImage, IconSend, IconStop } from './icons.js';

export interface Attachment {
  id: number;
  name: string;
  mediaType: ImageMediaType;
  base64: string;
  bytes: number;
}

const DEFAULT_LIMITS: ServiceInfo['limits'] = {
  max_message_chars: 100_000,
  max_images_per_message: 10,
  max_image_bytes: 5 * 1024 * 1024,
  image_media_types: ['image/png', 'image/jpeg', 'image/gif', 'image/webp'],
};

let nextId = 1;

function readBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(n % (1024 * 1024) ? 1 : 0)} MB` : `${Math.round(n / 1024)} KB`;
}

export interface ComposerHandle {
  addFiles(files: Iterable<File>): void;
}

/**
 * The message box: Enter sends, Shift+Enter is a new line, Esc or Stop ends the running answer. Sending while an
 * answer runs interrupts it (the service does that). Images come by button, paste or drop, checked against the
 * service's limits (GET /api/info) before anything is sent.
 */
export function Composer({
  limits,
  processing,
  connected,
  chatKey,
  onSend,
  onStop,
  handle,
}: {
  limits: ServiceInfo['limits'] | null;
  processing: boolean;
  connected: boolean;
  chatKey: string;
  onSend: (content: string, images: ImageInput[]) => Promise<boolean> | boolean;
  onStop: () => void;
  handle: { current: ComposerHandle | null };
}) {
  const lim = limits ?? DEFAULT_LIMITS;
  const [text, setText] = useState('');
  const [images, setImages] = useState<Attachment[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const box = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    box.current?.focus();
  }, [chatKey]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
  }, [text]);

  const addFiles = async (files: Iterable<File>) => {
    const list = [...files];
    if (list.length === 0) return;
    const added: Attachment[] = [];
    for (const file of list) {
      if (!lim.image_media_types.includes(file.type)) {
        setProblem(t.badImageType(file.name || file.type || 'file'));
        continue;
      }
      if (file.size > lim.max_image_bytes) {
        setProblem(t.imageTooBig(file.name || 'image', formatBytes(lim.max_image_bytes)));
        continue;
      }
      added.push({ id: nextId++, name: file.name, mediaType: file.type as ImageMediaType, base64: await readBase64(file), bytes: file.size });
    }
    setImages((current) => {
      const all = [...current, ...added];
      if (all.length > lim.max_images_per_message) {
        setProblem(t.tooManyImages(lim.max_images_per_message));
        return all.slice(0, lim.max_images_per_message);
      }
      return all;
    });
  };
  handle.current = { addFiles: (files) => void addFiles(files) };

  const send = async () => {
    const content = text.trim();
    if (!content && images.length === 0) return;
    if (content.length > lim.max_message_chars) {
      setProblem(t.tooLong(lim.max_message_chars));
      return;
    }
    if (!connected) {
      setProblem(t.notConnected);
      return;
    }
    const ok = await onSend(
      content,
      images.map((i) => ({ base64: i.base64, media_type: i.mediaType })),
    );
    if (ok) {
      setText('');
      setImages([]);
      setProblem(null);
    } else setProblem(t.notConnected);
  };

  const canSend = (text.trim().length > 0 || images.length > 0) && connected;
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      {problem && (
        <p class="composer-problem" role="alert">
          {problem}
        </p>
      )}
      <div class="composer-box">
        {images.length > 0 && (
          <ul class="thumbs">
            {images.map((img) => (
              <li key={img.id} class="thumb">
                <img src={`data:${img.mediaType};base64,${img.base64}`} alt={img.name} />
                <button
                  type="button"
                  class="thumb-remove"
                  aria-label={`${t.removeImage} ${img.name}`}
                  onClick={() => setImages(images.filter((i) => i.id !== img.id))}
                >
                  ×
                </button>
              </li>
            ))}
          </ul>
        )}
        <textarea
          ref={box}
          rows={1}
          aria-label={names.message}
          placeholder={t.placeholder}
          value={text}
          onInput={(e) => {
            setText((e.target as HTMLTextAreaElement).value);
            if (problem) setProblem(null);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void send();
            } else if (e.key === 'Escape' && processing) {
              e.preventDefault();
              onStop();
            }
          }}
          onPaste={(e) => {
            const files = [...(e.clipboardData?.files ?? [])].filter((f) => f.type.startsWith('image/'));
            if (files.length > 0) {
              e.preventDefault();
              void addFiles(files);
            }
          }}
        />
        <div class="composer-actions">
          <label class="icon-btn attach" title={t.attachImage}>
            <input
              type="file"
              class="visually-hidden"
              aria-label={names.attachImage}
              accept={lim.image_media_types.join(',')}
              multiple
              onChange={(e) => {
                const input = e.target as HTMLInputElement;
                void addFiles(input.files ?? []);
                input.value = '';
              }}
            />
            <IconImage />
          </label>
          <span class="spacer" />
          {processing && (
            <button type="button" class="stop-btn" aria-label={names.stop} title={`${t.stop} (Esc)`} onClick={onStop}>
              <IconStop />
            </button>
          )}
          <button type="submit" class="send-btn" aria-label={names.send} title={t.send} disabled={!canSend}>
            <IconSend />
          </button>
        </div>
      </div>
    </form>
  );
}
