/**
 * One conversation, oldest to newest. Live: a message_update for this conversation fetches that
 * one message and puts it in place (new ones at the bottom, status changes in their bubble), so
 * nothing above moves. Click a message for its delivery timeline; a failed SMS can be retried.
 */
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Conversation, Message, TimelineEntry } from '@hatch/contracts';
import { api, ApiError, newIdempotencyKey, senderName } from './api.js';
import { useLiveEvents } from './bus.js';
import { Composer } from './composer.js';
import { ChannelIcon, IconBack } from './icons.js';
import { LoadState } from './load-state.js';
import { byCreated, otherOfMessage, otherParticipant, ourOfMessage, ourParticipant } from './participants.js';
import { linkClick } from './router.js';
import { markSeen } from './seen.js';
import { statusLabel, Timeline } from './timeline.js';
import { clockTime, fullTime, relativeTime } from './time.js';

const PAGE = 50;

export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`badge st-${status}`} data-testid="status" data-status={status}>
      {statusLabel(status)}
    </span>
  );
}

export interface ThreadProps {
  conversationId: string;
  conversation?: Conversation;
  now: number;
  onActivity(): void;
}

export function Thread(p: ThreadProps) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const [open, setOpen] = useState<string | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const prependAnchor = useRef<number | null>(null);

  const upsert = useCallback((m: Message) => {
    setMessages((list) => {
      const i = list.findIndex((x) => x.id === m.id);
      if (i >= 0) {
        const next = list.slice();
        next[i] = m;
        return next;
      }
      return [...list, m].sort(byCreated);
    });
  }, []);

  const loadFirst = useCallback(async () => {
    try {
      const page = await api.messages(p.conversationId, PAGE);
      setMessages(page.messages.slice().sort(byCreated));
      setCursor(page.next_cursor);
      setError(undefined);
      stickToBottom.current = true;
    } catch (err) {
      setError(err instanceof ApiError && err.status === 404 ? 'This conversation does not exist.' : (err as Error).message);
    } finally {
      setLoading(false);
    }
  }, [p.conversationId]);

  useEffect(() => {
    setMessages([]);
    setCursor(null);
    setLoading(true);
    setOpen(null);
    void loadFirst();
  }, [loadFirst]);

  // Live: fetch the changed message itself (one small request) and put it in place.
  useLiveEvents(loadFirst, (e) => {
    if (e.kind !== 'message' || e.event.conversation_id !== p.conversationId) return;
    const el = scroller.current;
    stickToBottom.current = !el || el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    api.message(e.event.message_id).then(
      (r) => upsert(r.message),
      () => undefined,
    );
  });

  const last = messages[messages.length - 1];
  useEffect(() => {
    if (last)
      markSeen(
        p.conversationId,
        p.conversation?.updated_at && p.conversation.updated_at > last.updated_at ? p.conversation.updated_at : last.updated_at,
      );
  }, [p.conversationId, last?.id, last?.updated_at, p.conversation?.updated_at]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (prependAnchor.current !== null) {
      // Older messages went in above: keep what the reader was looking at where it was.
      el.scrollTop = el.scrollHeight - prependAnchor.current;
      prependAnchor.current = null;
    } else if (stickToBottom.current) el.scrollTop = el.scrollHeight;
  }, [messages]);

  async function loadOlder() {
    if (!cursor) return;
    const el = scroller.current;
    try {
      const page = await api.messages(p.conversationId, PAGE, cursor);
      prependAnchor.current = el ? el.scrollHeight - el.scrollTop : null;
      stickToBottom.current = false;
      setMessages((list) => {
        const ids = new Set(list.map((m) => m.id));
        return [...page.messages.filter((m) => !ids.has(m.id)), ...list].sort(byCreated);
      });
      setCursor(page.next_cursor);
    } catch (err) {
      setError((err as Error).message);
    }
  }

  const who = p.conversation ? otherParticipant(p.conversation) : last ? otherOfMessage(last) : '';
  const us = p.conversation ? ourParticipant(p.conversation) : last ? ourOfMessage(last) : undefined;
  const channel = p.conversation?.channel ?? last?.channel ?? 'chat';

  return (
    <section class="thread" aria-label={who ? `Conversation with ${who}` : 'Conversation'} data-testid="thread">
      <header class="pane-head">
        <a class="icon-btn back" href="/" aria-label="Back to conversations" onClick={(e) => linkClick(e, '/')}>
          <IconBack />
        </a>
        <span class={`avatar sm ch-${channel}`}>
          <ChannelIcon channel={channel} />
        </span>
        <div class="pane-title">
          <h2 data-testid="thread-title">{who || '\u00a0'}</h2>
          <span class="muted small">{channel === 'sms' ? 'SMS' : 'Chat'}</span>
        </div>
      </header>
      <div class="messages" ref={scroller} data-testid="messages">
        {cursor ? (
          <div class="load-older">
            <button type="button" class="btn btn-ghost btn-sm" onClick={() => void loadOlder()}>
              Load earlier messages
            </button>
          </div>
        ) : null}
        <LoadState loading={loading} error={error} />
        {!loading && !error && messages.length === 0 ? <p class="muted center">No messages yet.</p> : null}
        <ol class="bubbles">
          {messages.map((m) => (
            <Bubble
              key={m.id}
              m={m}
              open={open === m.id}
              onToggle={() => setOpen(open === m.id ? null : m.id)}
              now={p.now}
              onChanged={upsert}
            />
          ))}
        </ol>
      </div>
      {who ? (
        <Composer
          key={p.conversationId}
          to={who}
          from={channel === 'chat' ? us : undefined}
          autoFocus
          onSent={(res) => {
            stickToBottom.current = true;
            // Shown at once from the API, whether or not the live stream is up.
            api.message(res.message_id).then(
              (r) => upsert(r.message),
              () => undefined,
            );
            p.onActivity();
          }}
        />
      ) : null}
    </section>
  );
}

function Bubble({
  m,
  open,
  onToggle,
  now,
  onChanged,
}: {
  m: Message;
  open: boolean;
  onToggle: () => void;
  now: number;
  onChanged: (m: Message) => void;
}) {
  const out = m.direction === 'outbound';
  // Who sent it (issue 18): a person's name, "API" for the bootstrap token; nothing for old rows.
  const sender = out ? senderName(m) : undefined;
  const [timeline, setTimeline] = useState<TimelineEntry[] | null>(null);
  const [retrying, setRetrying] = useState(false);
  const [retryError, setRetryError] = useState<string>();

  useEffect(() => {
    if (!open) return;
    let live = true;
    api.message(m.id).then(
      (r) => live && setTimeline(r.timeline),
      (err: Error) => live && setRetryError(err.message),
    );
    return () => {
      live = false;
    };
  }, [open, m.status, m.id]);

  async function retry() {
    setRetrying(true);
    setRetryError(undefined);
    try {
      await api.retry(m.id, newIdempotencyKey());
      const r = await api.message(m.id);
      onChanged(r.message);
    } catch (err) {
      setRetryError((err as Error).message);
    } finally {
      setRetrying(false);
    }
  }

  return (
    <li class={`bubble-row ${out ? 'out' : 'in'}`} data-message-id={m.id} data-testid="message">
      <div class="bubble-wrap">
        <button type="button" class="bubble" aria-expanded={open} onClick={onToggle}>
          <span class="bubble-text" data-testid="message-body">
            {m.body}
          </span>
          <span class="bubble-meta">
            {sender ? (
              <span class="bubble-sender" data-testid="message-sender">
                {sender}
              </span>
            ) : null}
            <time dateTime={m.created_at} title={fullTime(m.created_at)}>
              {relativeTime(m.created_at, now) === 'now'
                ? clockTime(m.created_at)
                : `${relativeTime(m.created_at, now)} · ${clockTime(m.created_at)}`}
            </time>
            {out ? <StatusBadge status={m.status} /> : null}
          </span>
        </button>
        {(m.status === 'failed' || m.status === 'undelivered') && (m.error_message || m.error_code) ? (
          <p class="bubble-error" data-testid="message-error">
            {m.error_message ?? 'Not delivered'}
            {m.error_code ? ` (${m.error_code})` : ''}
          </p>
        ) : null}
        {m.channel === 'sms' && m.status === 'failed' ? (
          <button type="button" class="btn btn-sm btn-outline" onClick={() => void retry()} disabled={retrying} data-testid="retry">
            {retrying ? 'Retrying…' : 'Retry'}
          </button>
        ) : null}
        {retryError ? (
          <p class="field-error" role="alert">
            {retryError}
          </p>
        ) : null}
        {open ? <Timeline entries={timeline} title="Delivery timeline" details /> : null}
      </div>
    </li>
  );
}
