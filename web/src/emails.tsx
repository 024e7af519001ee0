/** Sent emails with their live status (email_update events refresh the row). */
import { useCallback, useEffect, useState } from 'preact/hooks';
import type { Email, TimelineEntry } from '@hatch/contracts';
import { api, ApiError, senderName, type WithSender } from './api.js';
import { useLiveEvents } from './bus.js';
import { IconBack, IconMail } from './icons.js';
import { LoadState } from './load-state.js';
import { linkClick } from './router.js';
import { Timeline } from './timeline.js';
import { fullTime, relativeTime } from './time.js';

const PAGE = 50;

export function EmailsView({ now, onCompose }: { now: number; onCompose: () => void }) {
  const [emails, setEmails] = useState<Email[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const [open, setOpen] = useState<string | null>(null);

  const loadFirst = useCallback(async () => {
    try {
      const page = await api.emails(PAGE);
      setEmails((old) => {
        const fresh = new Set(page.emails.map((e) => e.id));
        return [...page.emails, ...old.filter((e) => !fresh.has(e.id) && page.emails.length === PAGE)];
      });
      setCursor((c) => c ?? page.next_cursor);
      setError(undefined);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 404 ? 'Email is not available on this gateway yet.' : (err as Error).message);
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    void loadFirst();
  }, [loadFirst]);

  useLiveEvents(loadFirst, (e) => {
    if (e.kind !== 'email') return;
    api.email(e.event.email_id).then(
      (r) =>
        setEmails((list) => {
          const i = list.findIndex((x) => x.id === r.email.id);
          if (i < 0) return [r.email, ...list];
          const next = list.slice();
          next[i] = r.email;
          return next;
        }),
      () => undefined,
    );
  });

  async function more() {
    if (!cursor) return;
    try {
      const page = await api.emails(PAGE, cursor);
      setEmails((list) => [...list, ...page.emails.filter((e) => !list.some((x) => x.id === e.id))]);
      setCursor(page.next_cursor);
    } catch (err) {
      setError((err as Error).message);
    }
  }

  return (
    <section class="emails" aria-labelledby="emails-title" data-testid="emails-view">
      <header class="pane-head">
        <a class="icon-btn back" href="/" aria-label="Back to conversations" onClick={(e) => linkClick(e, '/')}>
          <IconBack />
        </a>
        <div class="pane-title">
          <h2 id="emails-title">Sent emails</h2>
        </div>
        <button type="button" class="btn btn-primary btn-sm" onClick={onCompose}>
          Compose
        </button>
      </header>
      <div class="emails-scroll">
        <LoadState loading={loading} error={error} />
        {!loading && !error && emails.length === 0 ? (
          <div class="empty">
            <IconMail />
            <p class="empty-title">No emails sent yet</p>
            <button type="button" class="btn btn-primary" onClick={onCompose}>
              Compose email
            </button>
          </div>
        ) : null}
        <ul class="email-list">
          {emails.map((m) => (
            <li key={m.id} data-email-id={m.id} data-testid="email-row">
              <button type="button" class="email-row" aria-expanded={open === m.id} onClick={() => setOpen(open === m.id ? null : m.id)}>
                <span class="email-main">
                  <span class="email-to">{m.to_email.join(', ')}</span>
                  <span class="email-subject">{m.subject}</span>
                  {senderName(m as WithSender<Email>) ? (
                    <span class="muted small" data-testid="email-sender">
                      sent by {senderName(m as WithSender<Email>)}
                    </span>
                  ) : null}
                </span>
                <span class="email-side">
                  <span class={`badge st-${m.status}`} data-testid="status" data-status={m.status}>
                    {m.status}
                  </span>
                  <time class="muted small" dateTime={m.created_at} title={fullTime(m.created_at)}>
                    {relativeTime(m.created_at, now)}
                  </time>
                </span>
              </button>
              {m.error_message ? <p class="bubble-error">{m.error_message}</p> : null}
              {open === m.id ? <EmailTimeline id={m.id} status={m.status} /> : null}
            </li>
          ))}
        </ul>
        {cursor ? (
          <div class="center">
            <button type="button" class="btn btn-ghost btn-sm" onClick={() => void more()}>
              Load more
            </button>
          </div>
        ) : null}
      </div>
    </section>
  );
}

function EmailTimeline({ id, status }: { id: string; status: string }) {
  const [tl, setTl] = useState<TimelineEntry[] | null>(null);
  useEffect(() => {
    let live = true;
    api.email(id).then(
      (r) => live && setTl(r.timeline),
      () => live && setTl([]),
    );
    return () => {
      live = false;
    };
  }, [id, status]);
  return <Timeline entries={tl} />;
}
