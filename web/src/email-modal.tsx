/**
 * Compose Email: validated here before sending (the contract's limits, from @hatch/contracts);
 * an API error shows by its field and keeps the draft; success shows a confirmation that counts
 * down 5-4-3-2-1 and closes the dialog.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { asList, checkSendEmail, EMAIL_LIMITS, type SendEmailBody } from '@hatch/contracts';
import type { ErrorDetail } from '@hatch/contracts';
import { api, ApiError, fieldOf, newIdempotencyKey } from './api.js';
import { IconClip } from './icons.js';

const FIELDS = ['to_email', 'cc', 'bcc', 'reply_to', 'subject', 'body', 'attachments'] as const;
type Field = (typeof FIELDS)[number];
type Errors = Partial<Record<Field | 'form', string>>;

export const COUNTDOWN_SECONDS = 5;

export function splitAddresses(raw: string): string[] {
  return raw
    .split(/[,;\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

interface Attachment {
  filename: string;
  type: string;
  size: number;
  content: string;
}

function readBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve((r.result as string).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error ?? new Error('could not read the file'));
    r.readAsDataURL(file);
  });
}

const kib = (n: number) => (n < 1024 * 1024 ? `${Math.max(1, Math.round(n / 1024))} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`);

/** `body.cc.1: must be …` → errors.cc = `“b@x” must be …`: each problem by its field. */
function detailsByField(details: ErrorDetail[], body: SendEmailBody): Errors {
  const out: Errors = {};
  for (const d of details) {
    const f = fieldOf(d.field) as Field;
    if (!(FIELDS as readonly string[]).includes(f) || out[f]) continue;
    let text = d.message;
    if (f === 'to_email' || f === 'cc' || f === 'bcc' || f === 'reply_to') {
      const idx = /\.(\d+)$/.exec(d.field)?.[1];
      const addr = asList(body[f])[idx === undefined ? 0 : Number(idx)];
      if (addr && !/recipients/.test(text)) text = `“${addr}” ${text}`;
    } else if (f === 'attachments') {
      const idx = /attachments\.(\d+)/.exec(d.field)?.[1];
      const a = idx === undefined ? undefined : body.attachments?.[Number(idx)];
      if (a) text = `${a.filename}: ${text}`;
    }
    out[f] = text;
  }
  return out;
}

export function EmailModal({ onClose, onSent }: { onClose: () => void; onSent: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [v, setV] = useState({ to_email: '', cc: '', bcc: '', reply_to: '', subject: '', body: '' });
  const [files, setFiles] = useState<Attachment[]>([]);
  const [errors, setErrors] = useState<Errors>({});
  const [sending, setSending] = useState(false);
  const [sentTo, setSentTo] = useState<string | null>(null);
  const [left, setLeft] = useState(COUNTDOWN_SECONDS);
  const [showCopies, setShowCopies] = useState(false);
  // One Idempotency-Key per draft: a resend of the same draft cannot send twice; an edited draft is a new send.
  const key = useRef<{ key: string; draft: string } | null>(null);
  const inFlight = useRef(false);

  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
  }, []);

  // Success: 5-4-3-2-1, then close.
  useEffect(() => {
    if (sentTo === null) return;
    // "1" stays up for its full second, then the dialog closes (no "0" is ever shown).
    const t = setTimeout(() => (left <= 1 ? onClose() : setLeft(left - 1)), 1000);
    return () => clearTimeout(t);
  }, [sentTo, left]);

  const set = (k: keyof typeof v) => (e: Event) => {
    setV({ ...v, [k]: (e.target as HTMLInputElement).value });
    if (errors[k]) setErrors({ ...errors, [k]: undefined });
  };

  async function addFiles(list: FileList | null) {
    if (!list) return;
    const next = files.slice();
    let problem: string | undefined;
    for (const f of Array.from(list)) {
      if (next.length >= EMAIL_LIMITS.attachmentsMax) problem = `At most ${EMAIL_LIMITS.attachmentsMax} attachments`;
      else if (f.size > EMAIL_LIMITS.attachmentMaxBytes) problem = `${f.name} is larger than ${kib(EMAIL_LIMITS.attachmentMaxBytes)}`;
      else if (next.reduce((s, a) => s + a.size, 0) + f.size > EMAIL_LIMITS.attachmentsTotalMaxBytes)
        problem = `Attachments may total at most ${kib(EMAIL_LIMITS.attachmentsTotalMaxBytes)}`;
      else next.push({ filename: f.name, type: f.type || 'application/octet-stream', size: f.size, content: await readBase64(f) });
    }
    setFiles(next);
    setErrors({ ...errors, attachments: problem });
  }

  function draft(): SendEmailBody {
    const one = (list: string[]) => (list.length === 1 ? (list[0] as string) : list);
    const body: SendEmailBody = { to_email: one(splitAddresses(v.to_email)), subject: v.subject, body: v.body };
    const cc = splitAddresses(v.cc);
    const bcc = splitAddresses(v.bcc);
    if (cc.length) body.cc = one(cc);
    if (bcc.length) body.bcc = one(bcc);
    if (v.reply_to.trim()) body.reply_to = v.reply_to.trim();
    if (files.length) body.attachments = files.map(({ filename, type, content }) => ({ filename, type, content }));
    return body;
  }

  /** What the schema requires, then every rule the server checks, by the same function (checkSendEmail). */
  function validate(body: SendEmailBody): Errors {
    const e: Errors = {};
    if (asList(body.to_email).length === 0) e.to_email = 'Add at least one recipient';
    if (splitAddresses(v.reply_to).length > 1) e.reply_to = 'Only one reply-to address';
    if (!v.subject.trim()) e.subject = 'Add a subject';
    else if (v.subject.length > EMAIL_LIMITS.subjectMax) e.subject = `At most ${EMAIL_LIMITS.subjectMax} characters`;
    if (!v.body.trim()) e.body = 'Write the email';
    if (Object.keys(e).length) return e;
    const checked = checkSendEmail(body);
    return checked.ok ? {} : detailsByField(checked.details, body);
  }

  async function submit(ev: Event) {
    ev.preventDefault();
    if (inFlight.current || sentTo !== null) return;
    const body = draft();
    const e = validate(body);
    setErrors(e);
    if (Object.keys(e).length) {
      if (e.cc || e.bcc || e.reply_to) setShowCopies(true);
      const first = FIELDS.find((f) => e[f]);
      if (first) dialog.current?.querySelector<HTMLElement>(`[name="${first}"]`)?.focus();
      return;
    }
    const fingerprint = JSON.stringify(body);
    if (!key.current || key.current.draft !== fingerprint) key.current = { key: newIdempotencyKey(), draft: fingerprint };
    inFlight.current = true;
    setSending(true);
    try {
      await api.sendEmail(body, key.current.key);
      setSentTo(asList(body.to_email).join(', '));
      setLeft(COUNTDOWN_SECONDS);
      onSent();
    } catch (err) {
      if (err instanceof ApiError) {
        const byField = detailsByField(err.details, body);
        if (Object.keys(byField).length === 0) byField.form = err.message;
        if (byField.cc || byField.bcc) setShowCopies(true);
        setErrors(byField);
      } else setErrors({ form: (err as Error).message });
    } finally {
      inFlight.current = false;
      setSending(false);
    }
  }

  const fieldProps = (k: Field) => ({
    id: `email-${k}`,
    name: k,
    'aria-invalid': errors[k] ? ('true' as const) : undefined,
    'aria-describedby': errors[k] ? `email-${k}-error` : undefined,
    disabled: sending,
  });
  const err = (k: Field) =>
    errors[k] ? (
      <p id={`email-${k}-error`} class="field-error" data-testid={`email-error-${k}`}>
        {errors[k]}
      </p>
    ) : null;

  return (
    <dialog
      ref={dialog}
      class="modal"
      aria-labelledby="email-title"
      data-testid="email-modal"
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      {sentTo !== null ? (
        <div class="modal-done" data-testid="email-success" role="status">
          <div class="done-check" aria-hidden="true">
            ✓
          </div>
          <h2 id="email-title">Email queued</h2>
          <p>
            Your email to <strong>{sentTo}</strong> is on its way.
          </p>
          <p class="muted">
            Closing in <span data-testid="email-countdown">{left}</span>…
          </p>
          <button type="button" class="btn btn-outline" onClick={onClose} autoFocus>
            Close now
          </button>
        </div>
      ) : (
        <form class="modal-form" onSubmit={(e) => void submit(e)} noValidate>
          <header class="modal-head">
            <h2 id="email-title">New email</h2>
            <button type="button" class="icon-btn" aria-label="Close" onClick={onClose}>
              ✕
            </button>
          </header>
          <div class="modal-body">
            <div class="field">
              <label for="email-to_email">To</label>
              <input
                type="text"
                inputMode="email"
                autoComplete="off"
                placeholder="name@example.com, …"
                value={v.to_email}
                onInput={set('to_email')}
                autoFocus
                {...fieldProps('to_email')}
              />
              {err('to_email')}
            </div>
            {showCopies ? (
              <>
                <div class="field">
                  <label for="email-cc">Cc</label>
                  <input type="text" inputMode="email" autoComplete="off" value={v.cc} onInput={set('cc')} {...fieldProps('cc')} />
                  {err('cc')}
                </div>
                <div class="field">
                  <label for="email-bcc">Bcc</label>
                  <input type="text" inputMode="email" autoComplete="off" value={v.bcc} onInput={set('bcc')} {...fieldProps('bcc')} />
                  {err('bcc')}
                </div>
                <div class="field">
                  <label for="email-reply_to">Reply-to</label>
                  <input
                    type="text"
                    inputMode="email"
                    autoComplete="off"
                    value={v.reply_to}
                    onInput={set('reply_to')}
                    {...fieldProps('reply_to')}
                  />
                  {err('reply_to')}
                </div>
              </>
            ) : (
              <button type="button" class="btn btn-link btn-sm" onClick={() => setShowCopies(true)} data-testid="email-show-copies">
                Cc, Bcc, Reply-to
              </button>
            )}
            <div class="field">
              <label for="email-subject">Subject</label>
              <input type="text" value={v.subject} onInput={set('subject')} {...fieldProps('subject')} />
              {err('subject')}
            </div>
            <div class="field">
              <label for="email-body">Message</label>
              <textarea rows={8} value={v.body} onInput={set('body')} {...fieldProps('body')} />
              {err('body')}
            </div>
            <div class="field">
              <span class="label-like">Attachments</span>
              {files.length ? (
                <ul class="files">
                  {files.map((f, i) => (
                    <li key={`${f.filename}-${i}`}>
                      <span>{f.filename}</span>
                      <span class="muted small">{kib(f.size)}</span>
                      <button
                        type="button"
                        class="btn btn-link btn-sm"
                        aria-label={`Remove ${f.filename}`}
                        onClick={() => setFiles(files.filter((_, j) => j !== i))}
                      >
                        Remove
                      </button>
                    </li>
                  ))}
                </ul>
              ) : null}
              <label class="btn btn-outline btn-sm file-btn">
                <IconClip /> Attach files
                <input
                  type="file"
                  multiple
                  class="sr-only"
                  name="attachments"
                  onChange={(e) => void addFiles((e.target as HTMLInputElement).files)}
                  disabled={sending}
                />
              </label>
              {err('attachments')}
            </div>
            {errors.form ? (
              <p class="form-error" role="alert" data-testid="email-error-form">
                {errors.form}
              </p>
            ) : null}
          </div>
          <footer class="modal-foot">
            <button type="button" class="btn btn-ghost" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" class="btn btn-primary" disabled={sending} data-testid="email-send">
              {sending ? 'Sending…' : 'Send email'}
            </button>
          </footer>
        </form>
      )}
    </dialog>
  );
}
