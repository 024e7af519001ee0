/**
 * The credentials behind this gateway's open event streams (issue 18): a stream lives no longer
 * than the session or token it was opened with.
 *
 * Requests are refused by the authenticator (auth.ts) the moment a credential ends; a stream is
 * one request that goes on, so it is watched here, three ways:
 * - revoked (sign-out, a session ended, a token revoked, a user disabled or reset): the
 *   revocation on the bus (revocations.ts) closes its streams on every replica at once;
 * - its absolute expiry (a session's HATCH_SESSION_MAX_DAYS, a token's expires_at), known when
 *   it authenticated: closed on the first check after it, without asking the database;
 * - anything else that ended it (idle expiry, a revocation this replica missed while NATS was
 *   away, a row deleted by hand): every `everyMs` (STREAM_CHECK_MS, 5 s) one statement reads the
 *   state of every distinct session and token behind the open streams (findCredentialStates, in
 *   batches of `batch` ids: at most HATCH_SSE_MAX_CLIENTS / 1000 statements a check, none while
 *   no stream is open, and never two checks at once), and closes the streams of those that ended.
 *
 * So an expired or revoked credential's stream is closed within STREAM_CHECK_MS (plus one query)
 * on every replica (docs/api.md "Sessions"). An open stream is not use of its session: only
 * requests move the idle limit (last_seen_at), so a tab left open on a stream still ends after
 * HATCH_SESSION_IDLE_HOURS without a request; the web UI then shows the sign-in page. The
 * EventSource's own reconnects are requests, and do count. When the check cannot read the
 * database, streams stay open until the next check that can (their requests are refused anyway
 * once the authenticator's cache ages out); the absolute expiry still closes them.
 */
import type { AuthRevoked } from '@hatch/contracts';
import { findCredentialStates, type CredentialState, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import type { Credential } from '../auth.js';
import type { HubClient } from './client-queue.js';

/** How often the credentials behind open streams are checked: the bound on closing an expired one. */
export const STREAM_CHECK_MS = 5000;
/** Ids per statement of a check. */
export const STREAM_CHECK_BATCH = 1000;

export interface StreamCredentialOptions {
  db: Db;
  log: Logger;
  /** HATCH_SESSION_IDLE_HOURS in ms */
  idleMs: number;
  /** the clock that decides expiry (the authenticator's) */
  now: () => number;
  everyMs?: number;
  batch?: number;
  /** a credential the check found ended: this replica's authenticator forgets its cached lookup */
  onEnded?: (c: { kind: 'session' | 'token'; id: string }) => void;
}

interface Held {
  credential: Credential;
  userId: string | null;
  /** ends the stream (events-route.ts) */
  end: () => void;
}

type Reason = 'revoked' | 'expired' | 'ended';

const keyOf = (c: { kind: string; id: string }) => `${c.kind}:${c.id}`;

/** Whether a credential's row says it no longer works at `now`. */
function ended(s: CredentialState, now: number, idleMs: number): boolean {
  if (s.user_disabled_at !== null || s.revoked_at !== null) return true;
  if (s.expires_at !== null && s.expires_at.getTime() <= now) return true;
  return s.last_seen_at !== null && s.last_seen_at.getTime() + idleMs <= now;
}

export class StreamCredentials {
  private readonly held = new Map<HubClient, Held>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<number> | undefined;

  constructor(private readonly opts: StreamCredentialOptions) {
    this.log = opts.log.child({ component: 'sse-credentials' });
  }

  /** Open streams being watched. */
  get size(): number {
    return this.held.size;
  }

  add(client: HubClient, credential: Credential, userId: string | null, end: () => void): void {
    this.held.set(client, { credential, userId, end });
  }

  remove(client: HubClient): void {
    this.held.delete(client);
  }

  /** A revocation from the bus: the streams of what it names end now. */
  revoked(ev: AuthRevoked): number {
    return this.closeWhere(
      (h) => (ev.kind === 'user' ? h.userId === ev.id : h.credential.kind === ev.kind && h.credential.id === ev.id),
      'revoked',
    );
  }

  start(): void {
    this.timer ??= setInterval(() => void this.check(), this.opts.everyMs ?? STREAM_CHECK_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.checking;
  }

  /** One check (see the header); answers how many streams it closed. Never two at once. */
  check(): Promise<number> {
    this.checking ??= this.runCheck().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async runCheck(): Promise<number> {
    const now = this.opts.now();
    let closed = this.closeWhere(
      (h) => h.credential.kind !== 'bootstrap' && h.credential.expiresAt !== null && h.credential.expiresAt <= now,
      'expired',
    );
    const ids = new Map<string, { kind: 'session' | 'token'; id: string }>();
    for (const h of this.held.values()) if (h.credential.kind !== 'bootstrap') ids.set(keyOf(h.credential), h.credential);
    const all = [...ids.values()];
    const batch = this.opts.batch ?? STREAM_CHECK_BATCH;
    for (let i = 0; i < all.length; i += batch) {
      const part = all.slice(i, i + batch);
      let states: CredentialState[];
      try {
        states = await findCredentialStates(this.opts.db.db, {
          sessions: part.filter((c) => c.kind === 'session').map((c) => c.id),
          tokens: part.filter((c) => c.kind === 'token').map((c) => c.id),
        });
      } catch (err) {
        this.log.warn(
          { err: { message: (err as Error).message } },
          'could not check the credentials of open event streams; next check in a few seconds',
        );
        return closed;
      }
      const found = new Map(states.map((s) => [keyOf(s), s]));
      const asked = new Set(part.map(keyOf));
      const at = this.opts.now();
      closed += this.closeWhere((h) => {
        if (h.credential.kind === 'bootstrap') return false;
        const key = keyOf(h.credential);
        if (!asked.has(key)) return false;
        const s = found.get(key);
        const gone = s === undefined || ended(s, at, this.opts.idleMs);
        if (gone) this.opts.onEnded?.(h.credential);
        return gone;
      }, 'ended');
    }
    return closed;
  }

  private closeWhere(pick: (h: Held) => boolean, reason: Reason): number {
    let n = 0;
    for (const [client, h] of [...this.held]) {
      if (!pick(h)) continue;
      this.held.delete(client);
      h.end();
      n++;
    }
    if (n > 0) this.log.info({ reason, streams: n }, 'event streams of an ended credential closed');
    return n;
  }
}
