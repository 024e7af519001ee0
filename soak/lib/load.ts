/**
 * The soak's clients (issue 17): senders of SMS, email and chat over every gateway at a set rate,
 * part of them with an Idempotency-Key, retrying a 503 after its Retry-After (and a refused
 * connection on another gateway), and SSE clients on every gateway, some filtered by a
 * conversation, some moving to another gateway at random and resuming with Last-Event-ID, every
 * one reconnecting when nothing arrived for two heartbeat intervals (a stalled gateway).
 *
 * Longer than ~350 lines on purpose: the senders and the SSE clients share the run's record of
 * what was answered and seen, which the oracle reads; each is a few small functions.
 */
import http from 'node:http';
import type { Rng } from './random.js';
import { TOKEN } from './stack.js';

export type SendKind = 'sms' | 'email' | 'chat';

export interface SendRecord {
  kind: SendKind;
  key?: string;
  startedAt: number;
  /** when the 202 came */
  acceptedAt?: number;
  id?: string;
  conversationId?: string;
  attempts: number;
  outcome: 'pending' | 'accepted' | 'refused' | 'unanswered';
  /** the last answer's status (0: no answer) */
  lastStatus: number;
}

export interface HttpProblem {
  at: number;
  gateway: string;
  status: number;
  detail: string;
}

/** What the HTTP side saw: answers by status, and the answers the contract forbids. */
export interface HttpStats {
  byStatus: Record<string, number>;
  /** a 5xx other than 503, or a 503 without Retry-After */
  violations: HttpProblem[];
  retried503: number;
  connectionErrors: number;
}

export const ROOMS = ['soak-room-1', 'soak-room-2', 'soak-room-3'];
/** Twilio refuses SMS to this number for good (an emulator `error` fault): they end `failed` with Twilio's code. */
export const REFUSED_NUMBER = '+14155550999';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function post(base: string, path: string, body: unknown, key: string | undefined): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(8000),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text: text.slice(0, 200) };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

function refused(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code === 'ECONNREFUSED';
}

export interface Sender {
  records: SendRecord[];
  stats: HttpStats;
  /** sends one request of `kind` (with retries); resolves with its record */
  send(kind: SendKind, opts?: { key?: string; to?: string }): Promise<SendRecord>;
  inFlight(): number;
}

export function createSender(gateways: () => string[], rnd: Rng, keyShare = 0.5): Sender {
  const records: SendRecord[] = [];
  const stats: HttpStats = { byStatus: {}, violations: [], retried503: 0, connectionErrors: 0 };
  let seq = 0;
  let inFlight = 0;
  const bodyFor = (kind: SendKind, n: number, to?: string) => {
    switch (kind) {
      case 'sms':
        return { to: to ?? `+1415555${String(1000 + (n % 8999)).padStart(4, '0')}`, body: `soak sms ${n}` };
      case 'chat':
        return { to: to ?? rnd.pick(ROOMS), body: `soak chat ${n}` };
      case 'email':
        return { to_email: to ?? `r${n % 500}@example.com`, subject: `soak ${n}`, body: `soak email ${n}` };
    }
  };
  const pathFor = (kind: SendKind) => (kind === 'email' ? '/api/send_email' : '/api/send_message');

  async function send(kind: SendKind, opts: { key?: string; to?: string } = {}): Promise<SendRecord> {
    const n = ++seq;
    const key = opts.key ?? (rnd.chance(keyShare) ? `soak-${Date.now()}-${n}` : undefined);
    const rec: SendRecord = { kind, key, startedAt: Date.now(), attempts: 0, outcome: 'pending', lastStatus: 0 };
    records.push(rec);
    const body = bodyFor(kind, n, opts.to);
    inFlight++;
    try {
      for (let attempt = 1; attempt <= 40; attempt++) {
        rec.attempts = attempt;
        const gw = rnd.pick(gateways());
        let ans: Answer;
        try {
          ans = await post(gw, pathFor(kind), body, key);
        } catch (err) {
          stats.connectionErrors++;
          rec.lastStatus = 0;
          // Refused: nothing reached a gateway, so another is safe. Otherwise the request may
          // have been committed: only a request with an Idempotency-Key may be repeated.
          if (refused(err) || key) {
            await sleep(300);
            continue;
          }
          rec.outcome = 'unanswered';
          return rec;
        }
        rec.lastStatus = ans.status;
        stats.byStatus[ans.status] = (stats.byStatus[ans.status] ?? 0) + 1;
        if (ans.status === 202) {
          rec.outcome = 'accepted';
          rec.acceptedAt = Date.now();
          rec.id = String(ans.body.message_id ?? ans.body.email_id);
          if (typeof ans.body.conversation_id === 'string') rec.conversationId = ans.body.conversation_id;
          return rec;
        }
        const retryAfter = Number(ans.headers.get('retry-after'));
        if (ans.status === 503 || ans.status === 409) {
          if (!Number.isFinite(retryAfter) || ans.headers.get('retry-after') === null) {
            stats.violations.push({
              at: Date.now(),
              gateway: gw,
              status: ans.status,
              detail: `no Retry-After: ${JSON.stringify(ans.body).slice(0, 200)}`,
            });
          }
          if (ans.status === 503) stats.retried503++;
          // a 409 is an earlier attempt with this key still running
          await sleep(Math.min(Math.max(retryAfter || 1, 0.2), 5) * 1000);
          continue;
        }
        if (ans.status >= 500) {
          stats.violations.push({ at: Date.now(), gateway: gw, status: ans.status, detail: JSON.stringify(ans.body).slice(0, 300) });
          if (key) {
            await sleep(500);
            continue;
          }
          rec.outcome = 'unanswered';
          return rec;
        }
        rec.outcome = 'refused';
        return rec;
      }
      rec.outcome = 'unanswered';
      return rec;
    } finally {
      inFlight--;
    }
  }
  return { records, stats, send, inFlight: () => inFlight };
}

/* ------------------------------------------------------------------------------------------ */

export interface SseEvent {
  id: bigint;
  type: string;
  /** receive time, ms */
  at: number;
  /** the change's time (the event's `timestamp`), ms */
  changedAt: number;
}

export interface SseClient {
  name: string;
  conversationId?: string;
  roams: boolean;
  /** the position of its first connection (its `connected` event's id): everything after it is owed */
  startId?: bigint;
  events: SseEvent[];
  /** out-of-order or repeated ids, resets, malformed frames */
  problems: string[];
  connections: number;
  stallsDetected: number;
  stop(): void;
}

export function startSseClient(o: {
  name: string;
  gateways: () => string[];
  home: number;
  conversationId?: string;
  roams: boolean;
  rnd: Rng;
  heartbeatMs: number;
}): SseClient {
  let req: http.ClientRequest | undefined;
  let stopped = false;
  let lastActivity = Date.now();
  let lastId: bigint | undefined;
  let nextGateway = o.home;
  let roamTimer: NodeJS.Timeout | undefined;
  /** the connection's gateway and the id it resumed from, for problem reports */
  let current: { host: string; resumedFrom?: string } | undefined;
  const client: SseClient = {
    name: o.name,
    conversationId: o.conversationId,
    roams: o.roams,
    events: [],
    problems: [],
    connections: 0,
    stallsDetected: 0,
    stop() {
      stopped = true;
      clearInterval(watch);
      clearTimeout(roamTimer);
      req?.destroy();
    },
  };

  const dispatch = (frame: { id?: string; event?: string; data: string }) => {
    if (frame.event === 'connected') {
      if (client.startId === undefined && frame.id !== undefined) {
        client.startId = BigInt(frame.id);
        lastId = client.startId;
      }
      return;
    }
    if (frame.event === 'reset') {
      client.problems.push(
        `reset at ${new Date().toISOString()} by ${current?.host} resuming from ${current?.resumedFrom} (the gateway is at ${frame.id}): ${frame.data}`,
      );
      if (frame.id !== undefined) lastId = BigInt(frame.id);
      return;
    }
    if (frame.event !== 'message_update' && frame.event !== 'email_update') return;
    if (frame.id === undefined) {
      client.problems.push(`${frame.event} without an id`);
      return;
    }
    const id = BigInt(frame.id);
    if (lastId !== undefined && id <= lastId) client.problems.push(`id ${id} after ${lastId} (not increasing)`);
    lastId = id;
    let changedAt = Number.NaN;
    try {
      changedAt = Date.parse(String((JSON.parse(frame.data) as { timestamp?: string }).timestamp));
    } catch {
      client.problems.push(`event ${id}: data is not JSON`);
    }
    client.events.push({ id, type: frame.event, at: Date.now(), changedAt });
  };

  const connect = () => {
    if (stopped) return;
    const gws = o.gateways();
    const base = new URL(gws[nextGateway % gws.length] as string);
    const path = `/api/events${o.conversationId ? `?conversation_id=${o.conversationId}` : ''}`;
    const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}`, accept: 'text/event-stream' };
    // before the first `connected` there is nothing to resume from
    if (lastId !== undefined) headers['last-event-id'] = String(lastId);
    current = { host: base.host, resumedFrom: headers['last-event-id'] };
    lastActivity = Date.now();
    client.connections++;
    const r = http.request({ host: base.hostname, port: base.port, path, headers, agent: false });
    req = r;
    let buf = '';
    let frame: { id?: string; event?: string; data: string } = { data: '' };
    const again = (delay: number, elsewhere: boolean) => {
      if (req !== r || stopped) return;
      req = undefined;
      r.destroy();
      if (elsewhere) nextGateway = o.rnd.int(0, gws.length - 1);
      setTimeout(connect, delay);
    };
    r.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        again(500, true);
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        // a connection the client already left (roamed, stalled) must not count
        if (req !== r) return;
        lastActivity = Date.now();
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (frame.event !== undefined || frame.data !== '') dispatch(frame);
            frame = { data: '' };
          } else if (line.startsWith(':')) continue;
          else {
            const c = line.indexOf(':');
            const field = c === -1 ? line : line.slice(0, c);
            const value = c === -1 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (field === 'id') frame.id = value;
            else if (field === 'event') frame.event = value;
            else if (field === 'data') frame.data += frame.data ? `\n${value}` : value;
          }
        }
      });
      // the stream ended (gateway stopping, cut as slow, not subscribed yet): resume, as EventSource does
      res.on('end', () => again(300, false));
      res.on('error', () => again(300, true));
    });
    r.on('error', () => again(300, true));
    r.end();
  };

  // A stalled (SIGSTOPped) gateway keeps the socket open and silent: two heartbeat intervals
  // without a byte and the client moves on, with Last-Event-ID.
  const watch = setInterval(() => {
    if (stopped || !req) return;
    if (Date.now() - lastActivity > 2 * o.heartbeatMs + 500) {
      client.stallsDetected++;
      const r = req;
      req = undefined;
      r.destroy();
      nextGateway = o.rnd.int(0, o.gateways().length - 1);
      setTimeout(connect, 100);
    }
  }, 500);
  watch.unref();

  if (o.roams) {
    const roam = () => {
      roamTimer = setTimeout(
        () => {
          if (stopped) return;
          const r = req;
          req = undefined;
          r?.destroy();
          nextGateway = o.rnd.int(0, o.gateways().length - 1);
          connect();
          roam();
        },
        o.rnd.int(5000, 15000),
      );
    };
    roam();
  }
  connect();
  return client;
}
