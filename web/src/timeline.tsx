/** A delivery timeline (a message's or an email's): one row per recorded status, oldest first. */
import type { TimelineEntry } from '@hatch/contracts';
import { senderName, type WithSender } from './api.js';
import { clockTime, fullTime } from './time.js';

const STATUS_LABEL: Record<string, string> = {
  queued: 'Queued',
  sending: 'Sending',
  sent: 'Sent',
  delivered: 'Delivered',
  undelivered: 'Undelivered',
  failed: 'Failed',
  received: 'Received',
  stored: 'Saved',
};

/** What a status is called on screen (the rest show as they are, capitalised by CSS). */
export function statusLabel(status: string): string {
  return STATUS_LABEL[status] ?? status;
}

export interface TimelineProps {
  /** null while loading */
  entries: TimelineEntry[] | null;
  /** a heading above the rows */
  title?: string;
  /** the provider's code and detail after the source */
  details?: boolean;
}

export function Timeline({ entries, title, details = false }: TimelineProps) {
  return (
    <div class="timeline" data-testid="timeline">
      {title ? <h3 class="small">{title}</h3> : null}
      {entries === null ? (
        <p class="muted small">Loading…</p>
      ) : (
        <ol>
          {entries.map((t, i) => (
            <li key={i} data-status={t.status}>
              <span class={`dot st-${t.status}`} aria-hidden="true" />
              <span class="tl-status">{statusLabel(t.status)}</span>
              <time class="muted" dateTime={t.at} title={fullTime(t.at)}>
                {clockTime(t.at)}
              </time>
              <span class="muted small">
                {t.source}
                {senderName(t as WithSender<TimelineEntry>) ? ` · by ${senderName(t as WithSender<TimelineEntry>)}` : ''}
                {details && t.provider_code ? ` · code ${t.provider_code}` : ''}
                {details && t.detail ? ` · ${t.detail}` : ''}
              </span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}
