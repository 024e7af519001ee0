import { useEffect, useRef } from 'preact/hooks';
import type { Conversation, Message } from '@hatch/contracts';
import { senderName, type WithSender } from './api.js';
import { ChannelIcon, IconInbox } from './icons.js';
import { otherParticipant } from './participants.js';
import { linkClick } from './router.js';
import { lastSeen } from './seen.js';
import { fullTime, relativeTime } from './time.js';

export interface ConversationListProps {
  conversations: Conversation[];
  hasMore: boolean;
  loading: boolean;
  error?: string;
  activeId?: string;
  now: number;
  onLoadMore: () => void;
  /** the signed-in person's id (null: the bootstrap token): their own messages read "You", a teammate's their name */
  meId?: string | null;
}

/** Who an outbound last message is from, for the preview: "You" unless the API names someone else. */
export function previewSender(m: WithSender<Message>, meId: string | null | undefined): string {
  const name = senderName(m);
  return name && !(meId !== undefined && m.sent_by?.id === meId) ? name : 'You';
}

export function isUnread(c: Conversation, activeId?: string): boolean {
  if (c.conversation_id === activeId) return false;
  const m = c.last_message;
  if (!m || m.direction !== 'inbound') return false;
  const seen = lastSeen(c.conversation_id);
  return !seen || seen < c.updated_at;
}

export function ConversationList(p: ConversationListProps) {
  const sentinel = useRef<HTMLLIElement>(null);
  // Infinite scroll: the next page loads when the end of the list scrolls into view.
  useEffect(() => {
    const el = sentinel.current;
    if (!el || !p.hasMore) return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) p.onLoadMore();
    });
    io.observe(el);
    return () => io.disconnect();
  }, [p.hasMore, p.onLoadMore, p.conversations.length]);

  if (!p.loading && p.conversations.length === 0) {
    return (
      <div class="empty" data-testid="conversations-empty">
        <IconInbox />
        <p class="empty-title">No conversations yet</p>
        <p class="muted">Send an SMS to a phone number or a chat message to a name to start one.</p>
        <a class="btn btn-primary" href="/new" onClick={(e) => linkClick(e, '/new')}>
          New message
        </a>
      </div>
    );
  }
  return (
    <ul class="conv-list" aria-label="Conversations" data-testid="conversation-list">
      {p.conversations.map((c) => {
        const who = otherParticipant(c);
        const unread = isUnread(c, p.activeId);
        const last = c.last_message;
        const href = `/c/${c.conversation_id}`;
        return (
          <li key={c.conversation_id}>
            <a
              href={href}
              class={`conv${c.conversation_id === p.activeId ? ' active' : ''}${unread ? ' unread' : ''}`}
              aria-current={c.conversation_id === p.activeId ? 'page' : undefined}
              data-conversation-id={c.conversation_id}
              onClick={(e) => linkClick(e, href)}
            >
              <span class={`avatar ch-${c.channel}`} title={c.channel === 'sms' ? 'SMS' : c.channel === 'email' ? 'Email' : 'Chat'}>
                <ChannelIcon channel={c.channel} />
              </span>
              <span class="conv-body">
                <span class="conv-top">
                  <span class="conv-name">{who}</span>
                  <time class="conv-time" dateTime={c.updated_at} title={fullTime(c.updated_at)}>
                    {relativeTime(c.updated_at, p.now)}
                  </time>
                </span>
                <span class="conv-bottom">
                  <span class="conv-preview">
                    {last ? (last.direction === 'outbound' ? `${previewSender(last, p.meId)}: ${last.body}` : last.body) : 'No messages'}
                  </span>
                  {unread ? (
                    <span class="unread-dot" data-testid="unread">
                      <span class="sr-only">unread</span>
                    </span>
                  ) : null}
                </span>
              </span>
            </a>
          </li>
        );
      })}
      {p.hasMore ? (
        <li ref={sentinel} class="list-more">
          <button type="button" class="btn btn-ghost btn-sm" onClick={p.onLoadMore} disabled={p.loading}>
            {p.loading ? 'Loading…' : 'Load more'}
          </button>
        </li>
      ) : null}
      {p.error ? (
        <li class="list-error" role="alert">
          {p.error}
        </li>
      ) : null}
    </ul>
  );
}
