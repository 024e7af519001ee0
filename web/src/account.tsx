/**
 * The account pages (issue 18, docs/api.md "Accounts, roles, tokens and sessions"): Sessions and
 * API tokens for everyone, People and Audit for admins. A secret the server shows once (a new
 * token, an invite or reset link) is shown once here too, with a copy button.
 */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import {
  AUDIT_KINDS,
  type ApiToken,
  type AuditEvent,
  type InviteLink,
  type Role,
  type SessionInfo,
  type User,
  type Whoami,
} from '@hatch/contracts';
import { api, ApiError } from './api.js';
import { IconBack } from './icons.js';
import { TextField } from './field.js';
import { LoadState } from './load-state.js';
import { linkClick } from './router.js';
import { fullTime, relativeTime } from './time.js';

function Page({ id, title, sub, children }: { id: string; title: string; sub?: string; children: ComponentChildren }) {
  return (
    <section class="acct" aria-labelledby={`${id}-title`} data-testid={`${id}-page`}>
      <header class="pane-head">
        <a class="icon-btn back" href="/" aria-label="Back to conversations" onClick={(e) => linkClick(e, '/')}>
          <IconBack />
        </a>
        <div class="pane-title">
          <h2 id={`${id}-title`}>{title}</h2>
          {sub ? <span class="muted small">{sub}</span> : null}
        </div>
      </header>
      <div class="acct-scroll">{children}</div>
    </section>
  );
}

function When({ at, now, never = '—' }: { at: string | null; now: number; never?: string }) {
  if (!at) return <span class="muted">{never}</span>;
  return (
    <time dateTime={at} title={fullTime(at)}>
      {relativeTime(at, now) === 'now' ? 'just now' : relativeTime(at, now)}
    </time>
  );
}

/** A secret shown once: read-only field, copy button, and the warning that it is not shown again. */
function OneTime({
  label,
  value,
  warning,
  onDone,
  testid,
}: {
  label: string;
  value: string;
  warning: string;
  onDone: () => void;
  testid: string;
}) {
  const [copied, setCopied] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      // No clipboard API (a plain-http origin): select the text and use the old command.
      input.current?.select();
      document.execCommand('copy');
    }
    setCopied(true);
  }
  return (
    <div class="once" role="status" data-testid={testid}>
      <p class="once-warn">{warning}</p>
      <label class="label-like" for={`${testid}-value`}>
        {label}
      </label>
      <div class="once-row">
        <input
          id={`${testid}-value`}
          ref={input}
          type="text"
          readOnly
          value={value}
          onFocus={(e) => (e.target as HTMLInputElement).select()}
          data-testid={`${testid}-value`}
        />
        <button type="button" class="btn btn-primary btn-sm" onClick={() => void copy()}>
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button type="button" class="btn btn-ghost btn-sm" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

/** Calls `fn`, keeping its error for the page; answers whether it worked. */
function useAction(): [string | undefined, (fn: () => Promise<unknown>) => Promise<boolean>, (e?: string) => void] {
  const [error, setError] = useState<string>();
  const run = useCallback(async (fn: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (err) {
      setError((err as Error).message);
      return false;
    }
  }, []);
  return [error, run, setError];
}

/** "Chrome on Linux" from a user agent, or the first words of it. */
export function clientLabel(ua: string | null): string {
  if (!ua) return 'Unknown client';
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : /^curl\//.test(ua)
            ? 'curl'
            : undefined;
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Mac OS X/.test(ua)
        ? 'macOS'
        : /Windows/.test(ua)
          ? 'Windows'
          : /Linux/.test(ua)
            ? 'Linux'
            : undefined;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? ua.slice(0, 40);
}

/** Sessions with an End (or, for this one, Sign out) button each: the Sessions page and a person's on People. */
function SessionTable({ sessions, now, onEnd }: { sessions: SessionInfo[]; now: number; onEnd: (s: SessionInfo) => void }) {
  return (
    <table class="acct-table">
      <thead>
        <tr>
          <th>Client</th>
          <th>Address</th>
          <th>Signed in</th>
          <th>Last seen</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {sessions.map((s) => (
          <tr key={s.id} data-testid="session-row" data-current={s.current ? 'true' : undefined}>
            <td title={s.client ?? undefined}>
              {clientLabel(s.client)}
              {s.current ? <span class="badge st-delivered tag">This device</span> : null}
            </td>
            <td>{s.address ?? <span class="muted">—</span>}</td>
            <td>
              <When at={s.created_at} now={now} />
            </td>
            <td>
              <When at={s.last_seen_at} now={now} />
            </td>
            <td class="actions">
              <button type="button" class="btn btn-outline btn-sm" onClick={() => onEnd(s)}>
                {s.current ? 'Sign out' : 'End'}
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Tokens, revoked and expired ones marked, with a Revoke button each: API tokens and a person's on People. */
function TokenTable({ tokens, now, onRevoke }: { tokens: ApiToken[]; now: number; onRevoke: (t: ApiToken) => void }) {
  return (
    <table class="acct-table">
      <thead>
        <tr>
          <th>Name</th>
          <th>Created</th>
          <th>Last used</th>
          <th>Expires</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {tokens.map((t) => {
          const expired = t.expires_at !== null && Date.parse(t.expires_at) <= now;
          return (
            <tr key={t.id} data-testid="token-row" class={t.revoked_at || expired ? 'gone' : undefined}>
              <td>{t.name}</td>
              <td>
                <When at={t.created_at} now={now} />
              </td>
              <td>
                <When at={t.last_used_at} now={now} never="never" />
              </td>
              <td>
                {t.expires_at ? (
                  <span title={fullTime(t.expires_at)}>{new Date(t.expires_at).toLocaleDateString()}</span>
                ) : (
                  <span class="muted">never</span>
                )}
              </td>
              <td class="actions">
                {t.revoked_at ? (
                  <span class="badge st-failed">revoked</span>
                ) : expired ? (
                  <span class="badge">expired</span>
                ) : (
                  <button type="button" class="btn btn-outline btn-sm" onClick={() => onRevoke(t)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function SessionsPage({ now, onSignOut }: { now: number; onSignOut: () => void }) {
  const [sessions, setSessions] = useState<SessionInfo[] | null>(null);
  const [loadError, setLoadError] = useState<string>();
  const [error, run] = useAction();
  const load = useCallback(() => {
    api.sessions().then(
      (r) => setSessions(r.sessions),
      (err: Error) => setLoadError(err.message),
    );
  }, []);
  useEffect(load, [load]);

  return (
    <Page id="sessions" title="Sessions" sub="Where you are signed in. End a session you do not recognise.">
      <LoadState loading={sessions === null && !loadError} error={loadError ?? error} />
      {sessions ? (
        <SessionTable
          sessions={sessions}
          now={now}
          onEnd={(x) => (x.current ? onSignOut() : void run(() => api.endSession(x.id)).then((ok) => ok && load()))}
        />
      ) : null}
      {sessions && sessions.length === 0 ? <p class="muted center">No sessions (you are using an API token).</p> : null}
    </Page>
  );
}

/** The end of the chosen day, local time, as the API's timestamp. */
function endOfDay(date: string): string {
  return new Date(`${date}T23:59:59`).toISOString();
}

export function TokensPage({ now, me }: { now: number; me: Whoami }) {
  const [tokens, setTokens] = useState<ApiToken[] | null>(null);
  const [loadError, setLoadError] = useState<string>();
  const [name, setName] = useState('');
  const [expiry, setExpiry] = useState('');
  const [created, setCreated] = useState<string>();
  const [nameError, setNameError] = useState<string>();
  const [error, run, setError] = useAction();
  const load = useCallback(() => {
    api.tokens().then(
      (r) => setTokens(r.tokens),
      (err: Error) => setLoadError(err.message),
    );
  }, []);
  useEffect(load, [load]);

  async function create(e: Event) {
    e.preventDefault();
    setNameError(name.trim() ? undefined : 'Name the token (what it is for)');
    if (!name.trim()) return;
    setError(undefined);
    try {
      const t = await api.createToken({ name: name.trim(), ...(expiry ? { expires_at: endOfDay(expiry) } : {}) });
      setCreated(t.token);
      setName('');
      setExpiry('');
      load();
    } catch (err) {
      if (err instanceof ApiError && err.fieldMessage('name')) setNameError(err.fieldMessage('name'));
      else if (err instanceof ApiError && err.fieldMessage('expires_at')) setError(`Expiry ${err.fieldMessage('expires_at')}`);
      else setError((err as Error).message);
    }
  }

  const bootstrap = me.user === null;
  return (
    <Page id="tokens" title="API tokens" sub="Personal tokens for scripts and integrations: they act as you, with your role.">
      {bootstrap ? (
        <p class="form-error">You are signed in with the setup token (“API”): sign in as a person to create personal tokens.</p>
      ) : (
        <form class="acct-form" onSubmit={(e) => void create(e)} noValidate data-testid="token-form">
          <TextField
            id="token-name"
            label="Name"
            placeholder="deploy script"
            maxLength={100}
            value={name}
            onValue={setName}
            error={nameError}
          />
          <TextField id="token-expiry" label="Expires (optional)" type="date" value={expiry} onValue={setExpiry} />
          <button type="submit" class="btn btn-primary">
            Create token
          </button>
        </form>
      )}
      {created ? (
        <OneTime
          label="Your new token"
          value={created}
          warning="Copy this token now: it is shown only this once. Anyone holding it acts as you."
          onDone={() => setCreated(undefined)}
          testid="new-token"
        />
      ) : null}
      <LoadState loading={tokens === null && !loadError} error={loadError ?? error} />
      {tokens && tokens.length ? (
        <TokenTable tokens={tokens} now={now} onRevoke={(x) => void run(() => api.revokeToken(x.id)).then((ok) => ok && load())} />
      ) : null}
      {tokens && tokens.length === 0 && !bootstrap ? <p class="muted center">No tokens yet.</p> : null}
    </Page>
  );
}

function AdminsOnly({ id, title }: { id: string; title: string }) {
  return (
    <Page id={id} title={title}>
      <p class="form-error">Only admins can see this page.</p>
    </Page>
  );
}

/** Everyone, all pages of /api/users (a team is small; the audit filter lists them too). */
async function allUsers(): Promise<User[]> {
  const users: User[] = [];
  let cursor: string | null = null;
  do {
    const page = await api.users(200, cursor);
    users.push(...page.users);
    cursor = page.next_cursor;
  } while (cursor);
  return users;
}

/** A first check before asking the server (which has the last word: 400 naming body.email). */
const looksLikeEmail = (s: string) => /^[^\s@]+@[^\s@]+$/.test(s.trim());

/**
 * One person, opened from the People page (admin): their email (editable), the sessions that
 * still work (End) and their API tokens (Revoke), through /api/users/:id/... .
 */
function PersonPanel({ user, now, onChanged, onClose }: { user: User; now: number; onChanged: (u: User) => void; onClose: () => void }) {
  const [sessions, setSessions] = useState<SessionInfo[] | null>(null);
  const [tokens, setTokens] = useState<ApiToken[] | null>(null);
  const [email, setEmail] = useState(user.email);
  const [emailError, setEmailError] = useState<string>();
  const [saved, setSaved] = useState(false);
  const [error, run, setError] = useAction();
  const load = useCallback(() => {
    void run(async () => {
      const [s, t] = await Promise.all([api.userSessions(user.id), api.userTokens(user.id)]);
      setSessions(s.sessions);
      setTokens(t.tokens);
    });
  }, [run, user.id]);
  useEffect(load, [load]);
  useEffect(() => setEmail(user.email), [user.email]);
  const panel = useRef<HTMLElement>(null);
  useEffect(() => panel.current?.scrollIntoView({ block: 'nearest' }), [user.id]);

  async function saveEmail(e: Event) {
    e.preventDefault();
    setSaved(false);
    setEmailError(looksLikeEmail(email) ? undefined : 'Enter an email address');
    if (!looksLikeEmail(email)) return;
    setError(undefined);
    try {
      onChanged(await api.updateUser(user.id, { email: email.trim() }));
      setSaved(true);
    } catch (err) {
      if (err instanceof ApiError && err.fieldMessage('email')) setEmailError(err.fieldMessage('email'));
      else if (err instanceof ApiError && err.code === 'CONFLICT') setEmailError('Another person has this email');
      else setError((err as Error).message);
    }
  }

  return (
    <section ref={panel} class="person" aria-labelledby="person-title" data-testid="person-panel">
      <header class="person-head">
        <h3 id="person-title">{user.name}</h3>
        <button type="button" class="btn btn-ghost btn-sm" onClick={onClose}>
          Close
        </button>
      </header>
      <form class="acct-form" onSubmit={(e) => void saveEmail(e)} noValidate data-testid="person-email-form">
        <TextField
          id="person-email"
          label="Email (signs in with it)"
          type="email"
          value={email}
          onValue={(v) => {
            setEmail(v);
            setSaved(false);
          }}
          error={emailError}
          hint={saved ? 'Saved' : undefined}
          testid="person-email-error"
        />
        <button type="submit" class="btn btn-primary" disabled={email.trim() === user.email}>
          Save email
        </button>
      </form>
      <LoadState loading={(sessions === null || tokens === null) && !error} error={error} />
      <h4>Sessions</h4>
      {sessions && sessions.length ? (
        <SessionTable
          sessions={sessions}
          now={now}
          onEnd={(x) => void run(() => api.endUserSession(user.id, x.id)).then((ok) => ok && load())}
        />
      ) : sessions ? (
        <p class="muted">Not signed in anywhere.</p>
      ) : null}
      <h4>API tokens</h4>
      {tokens && tokens.length ? (
        <TokenTable
          tokens={tokens}
          now={now}
          onRevoke={(x) => void run(() => api.revokeUserToken(user.id, x.id)).then((ok) => ok && load())}
        />
      ) : tokens ? (
        <p class="muted">No tokens.</p>
      ) : null}
    </section>
  );
}

export function PeoplePage({ now, me }: { now: number; me: Whoami }) {
  const [users, setUsers] = useState<User[] | null>(null);
  const [loadError, setLoadError] = useState<string>();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('agent');
  const [emailError, setEmailError] = useState<string>();
  const [link, setLink] = useState<{ what: string; link: InviteLink }>();
  const [open, setOpen] = useState<string>();
  const [error, run, setError] = useAction();
  const load = useCallback(() => {
    allUsers().then(setUsers, (err: Error) => setLoadError(err.message));
  }, []);
  useEffect(() => {
    if (me.role === 'admin') load();
  }, [me.role, load]);

  if (me.role !== 'admin') return <AdminsOnly id="people" title="People" />;

  async function invite(e: Event) {
    e.preventDefault();
    setEmailError(looksLikeEmail(email) ? undefined : 'Enter an email address');
    if (!looksLikeEmail(email)) return;
    setError(undefined);
    try {
      const l = await api.invite({ email: email.trim(), role });
      setLink({ what: `Invite link for ${l.user.email}`, link: l });
      setEmail('');
      load();
    } catch (err) {
      if (err instanceof ApiError && err.fieldMessage('email')) setEmailError(err.fieldMessage('email'));
      else setError((err as Error).message);
    }
  }

  const replace = (after: User) => setUsers((list) => list?.map((x) => (x.id === after.id ? after : x)) ?? null);
  const update = (u: User, body: { role?: Role; disabled?: boolean }) => void run(async () => replace(await api.updateUser(u.id, body)));
  const opened = users?.find((u) => u.id === open);
  const reset = (u: User) =>
    void run(async () => {
      const l = await api.resetUser(u.id);
      setLink({ what: `${u.pending ? 'Invite' : 'Password reset'} link for ${u.email}`, link: l });
    });

  return (
    <Page id="people" title="People" sub="Invite your team; admins manage people and read the audit log, agents handle messages.">
      <form class="acct-form" onSubmit={(e) => void invite(e)} noValidate data-testid="invite-form">
        <TextField
          id="invite-email"
          label="Email"
          type="email"
          placeholder="bo@example.com"
          value={email}
          onValue={setEmail}
          error={emailError}
        />
        <div class="field">
          <label for="invite-role">Role</label>
          <select id="invite-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as Role)}>
            <option value="agent">Agent</option>
            <option value="admin">Admin</option>
          </select>
        </div>
        <button type="submit" class="btn btn-primary">
          Invite
        </button>
      </form>
      {link ? (
        <OneTime
          label={link.what}
          value={link.link.link}
          warning={`Give this one-time link to the person: it is shown only now and works once, until ${fullTime(link.link.expires_at)}.`}
          onDone={() => setLink(undefined)}
          testid="invite-link"
        />
      ) : null}
      <LoadState loading={users === null && !loadError} error={loadError ?? error} />
      {users ? (
        <table class="acct-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Email</th>
              <th>Role</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.map((u) => {
              const self = u.id === me.user?.id;
              return (
                <tr key={u.id} data-testid="user-row" data-email={u.email} class={u.disabled_at ? 'gone' : undefined}>
                  <td>
                    {u.name}
                    {self ? <span class="muted small"> (you)</span> : null}
                  </td>
                  <td>{u.email}</td>
                  <td>
                    <select
                      aria-label={`Role of ${u.email}`}
                      value={u.role}
                      disabled={self}
                      onChange={(e) => update(u, { role: (e.target as HTMLSelectElement).value as Role })}
                    >
                      <option value="agent">Agent</option>
                      <option value="admin">Admin</option>
                    </select>
                  </td>
                  <td>
                    {u.disabled_at ? (
                      <span class="badge st-failed">disabled</span>
                    ) : u.pending ? (
                      <span class="badge st-queued">invited</span>
                    ) : (
                      <span class="badge st-delivered">active</span>
                    )}
                    <span class="muted small block">
                      since <When at={u.disabled_at ?? u.created_at} now={now} />
                    </span>
                  </td>
                  <td class="actions">
                    <button
                      type="button"
                      class="btn btn-outline btn-sm"
                      aria-expanded={open === u.id}
                      onClick={() => setOpen(open === u.id ? undefined : u.id)}
                      data-testid="manage-user"
                    >
                      Manage
                    </button>
                    {self ? null : (
                      <button type="button" class="btn btn-outline btn-sm" onClick={() => update(u, { disabled: !u.disabled_at })}>
                        {u.disabled_at ? 'Enable' : 'Disable'}
                      </button>
                    )}
                    <button type="button" class="btn btn-ghost btn-sm" onClick={() => reset(u)} disabled={!!u.disabled_at}>
                      {u.pending ? 'New invite link' : 'Reset password'}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      {opened ? <PersonPanel key={opened.id} user={opened} now={now} onChanged={replace} onClose={() => setOpen(undefined)} /> : null}
    </Page>
  );
}

const KIND_LABEL: Record<string, string> = {
  sign_in: 'Signed in',
  sign_in_failed: 'Failed sign-in',
  sign_out: 'Signed out',
  session_revoked: 'Session ended',
  token_created: 'Token created',
  token_revoked: 'Token revoked',
  user_invited: 'Person invited',
  user_created: 'Invite accepted',
  user_disabled: 'Person disabled',
  user_enabled: 'Person enabled',
  user_role_changed: 'Role changed',
  user_email_changed: 'Email changed',
  user_reset: 'Reset link issued',
};
const kindLabel = (k: string) => KIND_LABEL[k] ?? k.replace(/_/g, ' ');

const AUDIT_PAGE = 50;

export function AuditPage({ now, me }: { now: number; me: Whoami }) {
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [users, setUsers] = useState<User[]>([]);
  const [userId, setUserId] = useState('');
  const [kind, setKind] = useState('');
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(false);
  const admin = me.role === 'admin';

  useEffect(() => {
    if (admin) allUsers().then(setUsers, () => undefined);
  }, [admin]);

  const load = useCallback(
    async (before: string | null) => {
      setLoading(true);
      setError(undefined);
      try {
        const page = await api.audit({ limit: AUDIT_PAGE, before, userId: userId || undefined, kind: kind || undefined });
        setEvents((old) => (before ? [...(old ?? []), ...page.events] : page.events));
        setCursor(page.next_cursor);
      } catch (err) {
        setError((err as Error).message);
      } finally {
        setLoading(false);
      }
    },
    [userId, kind],
  );
  useEffect(() => {
    if (admin) void load(null);
  }, [admin, load]);

  if (!admin) return <AdminsOnly id="audit" title="Audit" />;
  const nameOf = (id: unknown) => (typeof id === 'string' ? (users.find((u) => u.id === id)?.name ?? undefined) : undefined);

  return (
    <Page id="audit" title="Audit" sub="Sign-ins, sessions, tokens and people: who did what, the newest first.">
      <div class="acct-form" role="group" aria-label="Filter">
        <div class="field">
          <label for="audit-user">Person</label>
          <select id="audit-user" value={userId} onChange={(e) => setUserId((e.target as HTMLSelectElement).value)}>
            <option value="">Everyone</option>
            {users.map((u) => (
              <option key={u.id} value={u.id}>
                {u.name} ({u.email})
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="audit-kind">Kind</label>
          <select id="audit-kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)}>
            <option value="">All kinds</option>
            {AUDIT_KINDS.map((k) => (
              <option key={k} value={k}>
                {kindLabel(k)}
              </option>
            ))}
          </select>
        </div>
      </div>
      <LoadState loading={loading && events === null} error={error} />
      {events ? (
        <table class="acct-table">
          <thead>
            <tr>
              <th>When</th>
              <th>What</th>
              <th>Who</th>
              <th>About</th>
              <th>Address</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.id} data-testid="audit-row" data-kind={e.kind}>
                <td>
                  <When at={e.at} now={now} />
                </td>
                <td>{kindLabel(e.kind)}</td>
                <td>
                  {/* a failed sign-in's actor is the email tried (maybe nobody's), not the person */}
                  {e.kind === 'sign_in_failed' ? e.actor_label : (nameOf(e.actor_id) ?? e.actor_label)}
                  {e.kind !== 'sign_in_failed' && !e.actor_label && !nameOf(e.actor_id) ? <span class="muted">—</span> : null}
                </td>
                <td>{nameOf(e.subject.user_id) ?? <span class="muted">—</span>}</td>
                <td>{e.address ?? <span class="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {events && events.length === 0 ? <p class="muted center">Nothing recorded{userId || kind ? ' for this filter' : ''}.</p> : null}
      {cursor ? (
        <div class="center">
          <button type="button" class="btn btn-ghost btn-sm" disabled={loading} onClick={() => void load(cursor)} data-testid="audit-more">
            {loading ? 'Loading…' : 'Load more'}
          </button>
        </div>
      ) : null}
    </Page>
  );
}
