/**
 * One EventSource per window on /api/events (contract "Server-Sent Events"). The browser
 * resumes by itself with Last-Event-ID after a dropped connection; when the stream is closed for
 * good (an error status, a gateway restart that refused the reconnect) we open a new one with
 * `?lastEventId=` (EventSource cannot set headers), so nothing sent meanwhile is missed. A
 * `reset` event means the gap cannot be replayed: listeners refetch.
 *
 * A stopped gateway (a stall, not a crash) keeps the connection open and silent, and the browser
 * would wait on it for ever: every stream gets a `keepalive` event each heartbeat interval (the
 * `connected` event names it), so nothing at all for two intervals (watchForStall, the rule the
 * soak's and the tests' Node clients follow too) means stalled: we drop it and reconnect with
 * `?lastEventId=`, which the load balancer sends to a replica that answers.
 */
import {
  backoffDelay,
  watchForStall,
  type Backoff,
  type ConnectedEvent,
  type EmailUpdateEvent,
  type MessageUpdateEvent,
  type StallWatch,
} from '@hatch/contracts';

/** After the server refused the stream: 0.5 s doubling to 15 s, ±25 % so a restarted gateway is not met by every tab at once. */
const RECONNECT_BACKOFF: Backoff = { baseMs: 500, maxMs: 15_000, jitter: 0.25 };

export type LiveState = 'connecting' | 'live' | 'reconnecting';

export interface LiveHandlers {
  state(s: LiveState): void;
  message(e: MessageUpdateEvent): void;
  email(e: EmailUpdateEvent): void;
  /** refetch everything: after `reset`, or after a reconnect that could not resume */
  refetch(): void;
  /** the stream was refused (an error status): e.g. check whether the session has ended */
  refused(): void;
}

export function startLive(h: LiveHandlers): { stop(): void } {
  let es: EventSource | undefined;
  let lastId: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let attempt = 0;
  let stopped = false;
  let everOpen = false;
  let watch: StallWatch | undefined;
  // the last interval a stream announced: a reconnect that stalls before its `connected` is noticed as soon
  let heartbeatMs: number | undefined;

  const remember = (e: MessageEvent) => {
    if (e.lastEventId) lastId = e.lastEventId;
  };
  const parse = <T>(e: MessageEvent): T | undefined => {
    try {
      return JSON.parse(String(e.data)) as T;
    } catch {
      return undefined;
    }
  };

  const connect = () => {
    if (stopped) return;
    h.state(everOpen ? 'reconnecting' : 'connecting');
    const url = lastId ? `/api/events?lastEventId=${encodeURIComponent(lastId)}` : '/api/events';
    const source = new EventSource(url, { withCredentials: true });
    es = source;
    watch?.stop();
    const w = watchForStall(() => {
      if (stopped || es !== source) return;
      source.close();
      h.state('reconnecting');
      connect();
    }, heartbeatMs);
    watch = w;
    const seen = (e: Event) => {
      if (es === source) w.seen();
      return e as MessageEvent;
    };
    source.onopen = () => {
      attempt = 0;
      // The first open of a window loads its data itself; a reopen without an id to resume from
      // cannot know what it missed.
      if (everOpen && !lastId) h.refetch();
      everOpen = true;
      h.state('live');
    };
    source.onerror = () => {
      if (stopped) return;
      h.state('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        w.stop();
        h.refused();
        const delay = backoffDelay(RECONNECT_BACKOFF, attempt++);
        timer = setTimeout(connect, delay);
      }
    };
    source.addEventListener('connected', (e) => {
      const m = seen(e);
      remember(m);
      const announced = parse<ConnectedEvent>(m)?.heartbeat_ms;
      if (announced) {
        heartbeatMs = announced;
        w.setHeartbeat(announced);
      }
    });
    // no id: nothing to remember, only proof that the stream is alive
    source.addEventListener('keepalive', (e) => void seen(e));
    source.addEventListener('message_update', (e) => {
      const m = seen(e);
      remember(m);
      const data = parse<MessageUpdateEvent>(m);
      if (data) h.message(data);
    });
    source.addEventListener('email_update', (e) => {
      const m = seen(e);
      remember(m);
      const data = parse<EmailUpdateEvent>(m);
      if (data) h.email(data);
    });
    source.addEventListener('reset', (e) => {
      remember(seen(e));
      h.refetch();
    });
  };

  connect();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      watch?.stop();
      es?.close();
    },
  };
}
