/**
 * The composer: a phone number (`+` and digits) goes out as SMS, a name as chat (the server
 * decides the same way, with the same `checkParticipant`): digits and phone punctuation without
 * `+` ("(415) 555-0100") are refused here before sending, with the same E.164 hint the API
 * gives. The segment counter is the server's own `countSmsSegments`, imported from
 * @hatch/contracts, so the two cannot disagree. The API's refusals show where they belong: by
 * the recipient when they name `to` (opted out, SMS_COUNTRY_NOT_ALLOWED), else under the form
 * (SMS_DAILY_LIMIT_REACHED).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { checkParticipant, countSmsSegments, looksLikePhoneNumber, SMS_BODY_MAX, type SendMessageResponse } from '@hatch/contracts';
import { api, ApiError, newIdempotencyKey } from './api.js';
import { IconSend } from './icons.js';

export interface ComposerProps {
  /** the recipient of an open thread; absent on the New message screen */
  to?: string;
  /** our side of an open chat thread (participants.ts ourParticipant): replies keep the thread */
  from?: string;
  onSent(res: SendMessageResponse, to: string): void;
  autoFocus?: boolean;
}

interface Errors {
  to?: string;
  body?: string;
  form?: string;
}

export function Composer(p: ComposerProps) {
  const [to, setTo] = useState(p.to ?? '');
  const [body, setBody] = useState('');
  const [sending, setSending] = useState(false);
  const [errors, setErrors] = useState<Errors>({});
  // Synchronous guard: a second click can arrive before the disabled state re-renders.
  const inFlight = useRef(false);
  // One key per draft: resending the same draft after a lost answer cannot send it twice.
  const draftKey = useRef<{ key: string; to: string; body: string } | null>(null);

  const toInput = useRef<HTMLInputElement>(null);
  const bodyInput = useRef<HTMLTextAreaElement>(null);
  // Preact has no mount-time autoFocus (the attribute only acts on page load): focus by hand.
  useEffect(() => {
    if (p.autoFocus) (p.to === undefined ? toInput.current : bodyInput.current)?.focus({ preventScroll: true });
  }, []);

  const recipient = p.to ?? to;
  const isSms = looksLikePhoneNumber(recipient);
  const counter = useMemo(() => countSmsSegments(body), [body]);
  const chars = [...body].length;

  async function send() {
    if (inFlight.current) return;
    const next: Errors = {};
    const who = checkParticipant(recipient);
    if (!who.ok) next.to = `Recipient ${who.reason}`;
    if (body.trim().length === 0) next.body = 'Write a message first';
    else if (chars > SMS_BODY_MAX) next.body = `At most ${SMS_BODY_MAX} characters (this is ${chars})`;
    setErrors(next);
    if (next.to || next.body || !who.ok) return;
    if (!draftKey.current || draftKey.current.to !== who.value || draftKey.current.body !== body) {
      draftKey.current = { key: newIdempotencyKey(), to: who.value, body };
    }
    inFlight.current = true;
    setSending(true);
    try {
      const res = await api.sendMessage(
        { to: who.value, body, ...(p.from !== undefined && !isSms ? { from: p.from } : {}) },
        draftKey.current.key,
      );
      draftKey.current = null;
      setBody('');
      setErrors({});
      p.onSent(res, who.value);
      bodyInput.current?.focus({ preventScroll: true });
    } catch (err) {
      if (err instanceof ApiError) {
        const toMsg = err.fieldMessage('to');
        const bodyMsg = err.fieldMessage('body');
        setErrors({
          to: toMsg ? `Recipient ${toMsg}` : undefined,
          body: bodyMsg ? `Message ${bodyMsg}` : undefined,
          form: toMsg || bodyMsg ? undefined : err.message,
        });
      } else setErrors({ form: (err as Error).message });
    } finally {
      inFlight.current = false;
      setSending(false);
    }
  }

  function onKeyDown(e: KeyboardEvent) {
    // Enter sends, Shift+Enter is a newline; never while an IME is composing.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      void send();
    }
  }

  return (
    <form
      class="composer"
      data-testid="composer"
      aria-label="Send a message"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
      noValidate
    >
      {p.to === undefined ? (
        <div class="field">
          <label for="composer-to">To</label>
          <div class="to-row">
            <input
              id="composer-to"
              name="to"
              type="text"
              inputMode="text"
              autoComplete="off"
              placeholder="+15551234567 or a name"
              value={to}
              onInput={(e) => setTo((e.target as HTMLInputElement).value)}
              aria-invalid={errors.to ? 'true' : undefined}
              aria-describedby={errors.to ? 'composer-to-error' : 'composer-channel'}
              readOnly={sending}
              ref={toInput}
            />
            <span
              id="composer-channel"
              class={`chip ${recipient.trim() ? (isSms ? 'chip-sms' : 'chip-chat') : 'chip-idle'}`}
              data-testid="composer-channel"
            >
              {recipient.trim() ? (isSms ? 'SMS' : 'Chat') : '—'}
            </span>
          </div>
          {errors.to ? (
            <p id="composer-to-error" class="field-error" role="alert" data-testid="error-to">
              {errors.to}
            </p>
          ) : null}
        </div>
      ) : errors.to ? (
        <p class="field-error" role="alert" data-testid="error-to">
          {errors.to}
        </p>
      ) : null}
      <div class="compose-row">
        <textarea
          id="composer-body"
          name="body"
          rows={2}
          placeholder={isSms ? 'Text message' : 'Message'}
          aria-label="Message"
          value={body}
          onInput={(e) => setBody((e.target as HTMLTextAreaElement).value)}
          onKeyDown={onKeyDown}
          aria-invalid={errors.body ? 'true' : undefined}
          aria-describedby="composer-counter"
          // Read-only, not disabled, while sending: a disabled field would lose the focus.
          readOnly={sending}
          aria-busy={sending}
          ref={bodyInput}
        />
        <button type="submit" class="btn btn-primary send" disabled={sending} aria-label="Send" data-testid="send">
          <IconSend />
          <span class="send-label">{sending ? 'Sending…' : 'Send'}</span>
        </button>
      </div>
      <div class="compose-foot">
        <span id="composer-counter" class="counter" data-testid="counter" aria-live="polite">
          {isSms
            ? `${counter.encoding} · ${counter.segments} segment${counter.segments === 1 ? '' : 's'} · ${counter.remainingInSegment} left`
            : `Chat · ${chars} character${chars === 1 ? '' : 's'}`}
        </span>
        <span class="hint">Enter to send · Shift+Enter for a new line</span>
      </div>
      {errors.body ? (
        <p class="field-error" role="alert" data-testid="error-body">
          {errors.body}
        </p>
      ) : null}
      {errors.form ? (
        <p class="form-error" role="alert" data-testid="error-form">
          {errors.form}
        </p>
      ) : null}
    </form>
  );
}
