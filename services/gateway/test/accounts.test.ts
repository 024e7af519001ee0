/**
 * Team accounts (issue 18) against listening gateways over real sockets: roles, invites,
 * passwords, session expiry on an injected clock, personal tokens, revocation across replicas,
 * the audit trail, and no secret in any log line or later answer.
 */
import t from 'tap';
import { AUDIT_KINDS } from '@hatch/contracts';
import { findApiTokenByHash } from '@hatch/db';
import { waitFor } from '@hatch/testing';
import { sha256 } from '../src/auth.js';
import { TEST_SCRYPT_LOG2N, TEST_TOKEN } from './helpers.js';
import { rawRequest } from './raw-http.js';
import { openSse } from './sse-client.js';
import { accountsGateway, BOOTSTRAP, seedUser, signIn, type AccountsGateway } from './accounts-harness.js';

const HOUR = 3600_000;
const NO_ID = '00000000-0000-4000-8000-000000000000';

async function withPeople(a: AccountsGateway) {
  const admin = await seedUser(a.g, { email: 'ada@example.com', role: 'admin', password: 'admin passphrase 1' });
  const agent = await seedUser(a.g, { email: 'bo@example.com', role: 'agent', password: 'agent passphrase 1' });
  return {
    admin,
    agent,
    adminCookie: await signIn(a, admin.email, admin.password),
    agentCookie: await signIn(a, agent.email, agent.password),
  };
}

/** Accepts an invite link's token with this name and password. */
const accept = (a: AccountsGateway, link: string, password: string, name = 'New Person') =>
  a.call('POST', '/api/invites/accept', { body: { token: link.split('#')[1], name, password } });

t.test('each role is allowed and refused the routes the table says (403 in the error shape)', async (t) => {
  const a = await accountsGateway(t);
  const { admin, agent, adminCookie, agentCookie } = await withPeople(a);
  const pat = await a.call('POST', '/api/tokens', { headers: { cookie: agentCookie }, body: { name: 'script' } });
  t.equal(pat.status, 201);
  const agentPat = { authorization: `Bearer ${String(pat.body.token)}` };
  const callers: Record<string, Record<string, string>> = {
    'admin session': { cookie: adminCookie },
    'agent session': { cookie: agentCookie },
    'agent token': agentPat,
    bootstrap: BOOTSTRAP,
  };
  const roleOf = (who: string) => (who.startsWith('agent') ? 'agent' : 'admin');
  // [method, path, body, admin status, agent status]
  const table: Array<[string, string, unknown, number, number]> = [
    ['GET', '/api/conversations', undefined, 200, 200],
    ['GET', '/api/emails', undefined, 200, 200],
    ['POST', '/api/send_message', { to: 'carol', body: 'hi' }, 202, 202],
    ['GET', '/api/session', undefined, 200, 200],
    ['GET', '/api/sessions', undefined, 200, 200],
    ['GET', '/api/tokens', undefined, 200, 200],
    ['GET', `/api/tokens?user_id=${admin.id}`, undefined, 200, 403],
    ['GET', '/api/users', undefined, 200, 403],
    ['POST', '/api/users', { email: 'x@example.com', role: 'agent' }, 201, 403],
    ['PATCH', `/api/users/${agent.id}`, { role: 'agent' }, 200, 403],
    ['PATCH', `/api/users/${agent.id}`, { email: 'bo@example.com' }, 200, 403],
    ['GET', `/api/users/${agent.id}/sessions`, undefined, 200, 403],
    ['GET', `/api/users/${admin.id}/sessions`, undefined, 200, 403],
    ['GET', `/api/users/${agent.id}/tokens`, undefined, 200, 403],
    ['GET', `/api/users/${admin.id}/tokens`, undefined, 200, 403],
    ['DELETE', `/api/users/${admin.id}/sessions/${NO_ID}`, undefined, 404, 403],
    ['DELETE', `/api/users/${admin.id}/tokens/${NO_ID}`, undefined, 404, 403],
    ['POST', `/api/users/${agent.id}/reset`, undefined, 201, 403],
    ['GET', '/api/audit', undefined, 200, 403],
  ];
  for (const [who, headers] of Object.entries(callers)) {
    for (const [method, path, body, adminStatus, agentStatus] of table) {
      // a fresh invitee per admin caller: the email is unique
      const b = path === '/api/users' && method === 'POST' ? { email: `${who.replace(/\W/g, '')}@example.com`, role: 'agent' } : body;
      const r = await a.call(method, path, { headers, body: b });
      const want = roleOf(who) === 'admin' ? adminStatus : agentStatus;
      t.equal(r.status, want, `${who}: ${method} ${path} → ${want}`);
      if (want === 403) t.match(r.body, { success: false, code: 'FORBIDDEN', error: String }, `${who}: ${method} ${path} error shape`);
    }
  }
  const me = await a.call('GET', '/api/session', { headers: agentPat });
  t.match(me.body, { role: 'agent', credential: 'token', user: { id: agent.id, email: agent.email } }, 'a token acts as its owner');
  const api = await a.call('GET', '/api/session', { headers: BOOTSTRAP });
  t.match(api.body, { role: 'admin', name: 'API', user: null, credential: 'bootstrap' }, 'the bootstrap token is an admin named API');
  // The policy hangs off the route the router matched, however the target was spelled.
  const port = Number(new URL(a.base).port);
  for (const target of ['/%61pi/users', `http://127.0.0.1:${port}/api/audit`, '/api/%75sers?limit=1']) {
    const r = await rawRequest(port, { method: 'GET', target, headers: { cookie: agentCookie } });
    t.equal(r.status, 403, `agent: GET ${target} → 403`);
  }
});

t.test('an invite is a one-time link that expires; a refused password leaves it working', async (t) => {
  const a = await accountsGateway(t);
  const { adminCookie } = await withPeople(a);
  const inv = await a.call('POST', '/api/users', { headers: { cookie: adminCookie }, body: { email: 'Cy@Example.com', role: 'agent' } });
  t.equal(inv.status, 201);
  const link = String(inv.body.link);
  t.match(link, /^http:\/\/hatch\.example\.test\/invite#[A-Za-z0-9_-]{43}$/);
  t.match(inv.body, { user: { email: 'Cy@Example.com', role: 'agent', pending: true } });
  t.equal(Date.parse(String(inv.body.expires_at)) - a.clock.now, 72 * HOUR, 'valid 72 h');
  const dup = await a.call('POST', '/api/users', { headers: { cookie: adminCookie }, body: { email: 'cy@example.COM', role: 'admin' } });
  t.equal(dup.status, 409, 'the email is taken whatever its case');

  const weak = await accept(a, link, 'too short');
  t.equal(weak.status, 400);
  t.match(weak.body, { code: 'INVALID_REQUEST', details: [{ field: 'body.password' }] });
  const ok = await accept(a, link, 'a good long passphrase', 'Cy Young');
  t.equal(ok.status, 204, 'accepted');
  t.ok(ok.cookie, 'and signed in');
  const me = await a.call('GET', '/api/session', { headers: { cookie: ok.cookie ?? '' } });
  t.match(me.body, { name: 'Cy Young', role: 'agent' });
  t.equal((await accept(a, link, 'another long passphrase')).status, 401, 'used once only');
  t.equal((await signIn(a, 'cy@example.com', 'a good long passphrase')).length > 0, true, 'signs in with email (any case) and password');
  const [cyRow] = await a.g.db.sql`SELECT password_hash FROM users WHERE email = 'Cy@Example.com'`;
  t.match(cyRow?.password_hash, `$scrypt$ln=${TEST_SCRYPT_LOG2N},r=8,p=1$`, "hashed at the config's cost (HATCH_PASSWORD_SCRYPT_LOG2N)");

  const late = await a.call('POST', '/api/users', { headers: { cookie: adminCookie }, body: { email: 'dee@example.com', role: 'agent' } });
  a.clock.now += 72 * HOUR + 1;
  const expired = await accept(a, String(late.body.link), 'a good long passphrase');
  t.equal(expired.status, 401, 'expired after 72 h');
  t.match(expired.body, { code: 'UNAUTHORIZED', error: /unknown, used or expired/ });
  t.equal((await accept(a, 'x#not-a-token', 'a good long passphrase')).status, 401, 'an unknown link');

  // A reset issues a new link; the old password stops working once it is used, and the old sessions end.
  const users = await a.call('GET', '/api/users', { headers: { cookie: adminCookie } });
  const cy = (users.body.users as Array<{ id: string; email: string }>).find((u) => u.email === 'Cy@Example.com');
  a.clock.now = Date.now();
  const reset = await a.call('POST', `/api/users/${cy?.id}/reset`, { headers: { cookie: adminCookie } });
  t.equal(reset.status, 201);
  t.equal((await accept(a, String(reset.body.link), 'a brand new passphrase')).status, 204);
  t.equal(
    (await a.call('GET', '/api/session', { headers: { cookie: ok.cookie ?? '' } })).status,
    401,
    'sessions from before the reset end',
  );
  const old = await a.call('POST', '/api/session', { body: { email: 'cy@example.com', password: 'a good long passphrase' } });
  t.equal(old.status, 401, 'the old password no longer signs in');
});

t.test('password rules: at least 12 characters, at most 1024 bytes, not the email: 400 naming body.password', async (t) => {
  const a = await accountsGateway(t);
  const { adminCookie } = await withPeople(a);
  const inv = await a.call('POST', '/api/users', { headers: { cookie: adminCookie }, body: { email: 'eve@example.com', role: 'agent' } });
  const link = String(inv.body.link);
  for (const [password, why] of [
    ['elevenchars', /at least 12/],
    ['x'.repeat(1025), /at most 1024 bytes/],
    ['€'.repeat(342), /at most 1024 bytes/],
    ['EVE@example.com', /email/],
  ] as const) {
    const r = await accept(a, link, password);
    t.equal(r.status, 400, `${password.slice(0, 20)}… refused`);
    t.match(r.body, { success: false, code: 'INVALID_REQUEST', error: why, details: [{ field: 'body.password' }] });
  }
  t.equal((await accept(a, link, 'twelve chars')).status, 204, '12 characters pass');
});

t.test('sessions end after the idle time and at the absolute expiry (injected clock); sign-out deletes the row', async (t) => {
  const a = await accountsGateway(t, { env: { HATCH_SESSION_IDLE_HOURS: '24', HATCH_SESSION_MAX_DAYS: '3' } });
  const { agent } = await withPeople(a);
  const me = (cookie: string) => a.call('GET', '/api/session', { headers: { cookie } });

  const idle = await signIn(a, agent.email, agent.password);
  a.clock.now += 24 * HOUR - 60_000;
  t.equal((await me(idle)).status, 200, 'used just before the idle limit');
  a.clock.now += 24 * HOUR - 60_000;
  t.equal((await me(idle)).status, 200, 'each use moves the idle limit on');
  a.clock.now += 24 * HOUR;
  const r = await me(idle);
  t.equal(r.status, 401, 'unused for the idle time: ended');
  t.match(r.body, { code: 'UNAUTHORIZED', error: /expired/ });

  a.clock.now = Date.now();
  const busy = await signIn(a, agent.email, agent.password);
  for (let d = 0; d < 5; d++) {
    a.clock.now += 12 * HOUR;
    t.equal((await me(busy)).status, 200, `in use after ${(d + 1) * 12} h`);
  }
  a.clock.now += 12 * HOUR; // 72 h after sign-in
  t.equal((await me(busy)).status, 401, 'ended at the absolute expiry however much it is used');

  a.clock.now = Date.now();
  const out = await signIn(a, agent.email, agent.password);
  const list = await a.call('GET', '/api/sessions', { headers: { cookie: out } });
  t.equal((list.body.sessions as Array<{ current: boolean }>).filter((s) => s.current).length, 1, 'the list marks this session');
  const bye = await a.call('DELETE', '/api/session', { headers: { cookie: out } });
  t.equal(bye.status, 204);
  t.match(bye.headers.getSetCookie().join(), /hatch_session=;/, 'cookie cleared');
  t.equal((await me(out)).status, 401, 'signed out: the session row is gone');
  const rows = await a.g.db.sql`SELECT count(*)::int AS n FROM sessions WHERE id_hash = ${sha256(out.split('=')[1] ?? '')}`;
  t.equal(rows[0]?.n, 0, 'the row is deleted');
  // The cookie of the earlier, stateless scheme no longer works: sign in again.
  const old = await a.call('GET', '/api/session', { headers: { cookie: 'hatch_session=v1.9999999999.AAAAAAAAAAAAAAAAAAAAAA.sig' } });
  t.equal(old.status, 401);
});

t.test('a revoked session or token, or a disabled user, is refused on another replica at once, and its streams close', async (t) => {
  const a = await accountsGateway(t);
  // Replica B believes a found credential for a minute: only the bus can make it refuse sooner.
  const b = await accountsGateway(t, { replicaOf: a.g, build: { authCacheTtlMs: 60_000 } });
  const { agent, agentCookie, adminCookie } = await withPeople(a);
  const other = await signIn(a, agent.email, agent.password);
  const onB = (headers: Record<string, string>) => b.call('GET', '/api/session', { headers });
  t.equal((await onB({ cookie: agentCookie })).status, 200, 'B knows the session (and caches it)');
  const sse = await openSse(`${b.base}/api/events`, { cookie: agentCookie });
  t.teardown(() => sse.close());
  const sseOther = await openSse(`${b.base}/api/events`, { cookie: other });
  t.teardown(() => sseOther.close());
  t.equal(sse.status, 200);

  const list = await a.call('GET', '/api/sessions', { headers: { cookie: other } });
  const current = (list.body.sessions as Array<{ id: string; current: boolean }>).find((s) => !s.current);
  t.ok(current, 'the agent sees the other session');
  const started = Date.now();
  t.equal((await a.call('DELETE', `/api/sessions/${current?.id}`, { headers: { cookie: other } })).status, 204, 'ended on A');
  await waitFor(async () => (await onB({ cookie: agentCookie })).status === 401, {
    timeoutMs: 3000,
    message: 'B refuses the revoked session',
  });
  await sse.waitFor((c) => c.ended(), 3000, "the revoked session's stream on B closed");
  t.ok(Date.now() - started < 3000, `refused on B within ${Date.now() - started} ms`);
  t.notOk(sseOther.ended(), 'the same person’s other session keeps its stream');
  t.equal((await onB({ cookie: other })).status, 200);

  // A token revoked on A.
  const pat = await a.call('POST', '/api/tokens', { headers: { cookie: other }, body: { name: 'ci' } });
  const bearer = { authorization: `Bearer ${String(pat.body.token)}` };
  t.equal((await onB(bearer)).status, 200);
  t.equal((await a.call('DELETE', `/api/tokens/${String(pat.body.id)}`, { headers: { cookie: other } })).status, 204);
  await waitFor(async () => (await onB(bearer)).status === 401, { timeoutMs: 3000, message: 'B refuses the revoked token' });

  // A disabled user: every session and token, on every replica.
  const pat2 = await a.call('POST', '/api/tokens', { headers: { cookie: other }, body: { name: 'cron' } });
  const bearer2 = { authorization: `Bearer ${String(pat2.body.token)}` };
  t.equal((await onB(bearer2)).status, 200);
  const disabled = await a.call('PATCH', `/api/users/${agent.id}`, { headers: { cookie: adminCookie }, body: { disabled: true } });
  t.equal(disabled.status, 200);
  t.ok(disabled.body.disabled_at);
  await waitFor(async () => (await onB(bearer2)).status === 401, { timeoutMs: 3000, message: "B refuses the disabled user's token" });
  await sseOther.waitFor((c) => c.ended(), 3000, "the disabled user's stream on B closed");
  t.match((await onB(bearer2)).body, { code: 'UNAUTHORIZED', error: /disabled/ });
  t.equal((await onB({ cookie: other })).status, 401, 'and their session');
  t.equal((await a.call('POST', '/api/session', { body: { email: agent.email, password: agent.password } })).status, 401, 'no new sign-in');
  const enabled = await a.call('PATCH', `/api/users/${agent.id}`, { headers: { cookie: adminCookie }, body: { disabled: false } });
  t.equal(enabled.status, 200);
  t.equal((await onB(bearer2)).status, 200, 'enabled again: the token works again (its sessions were ended)');
});

t.test('personal tokens: shown once, act as the owner, expire, last_used_at written at most once a minute', async (t) => {
  const a = await accountsGateway(t);
  const { agent, agentCookie } = await withPeople(a);
  const made = await a.call('POST', '/api/tokens', { headers: { cookie: agentCookie }, body: { name: 'deploy' } });
  t.equal(made.status, 201);
  const token = String(made.body.token);
  t.match(token, /^hatch_pat_[A-Za-z0-9_-]{43}$/);
  const bearer = { authorization: `Bearer ${token}` };
  const sent = await a.call('POST', '/api/send_message', { headers: bearer, body: { to: 'dan', body: 'from a token' } });
  t.equal(sent.status, 202, 'a token sends as its owner');
  const list = await a.call('GET', '/api/tokens', { headers: bearer });
  t.notMatch(list.text, token.slice(10), 'the list never shows a token');
  t.match(list.body, { tokens: [{ id: made.body.id, user_id: agent.id, name: 'deploy', revoked_at: null }] });
  const hash = sha256(token.slice('hatch_pat_'.length));
  const first = (await findApiTokenByHash(a.g.db.db, hash))?.last_used_at?.getTime();
  t.ok(first, 'last_used_at recorded');
  a.clock.now += 30_000;
  await a.call('GET', '/api/session', { headers: bearer });
  t.equal((await findApiTokenByHash(a.g.db.db, hash))?.last_used_at?.getTime(), first, 'not written again within a minute');
  a.clock.now += 31_000;
  await a.call('GET', '/api/session', { headers: bearer });
  await waitFor(async () => (await findApiTokenByHash(a.g.db.db, hash))?.last_used_at?.getTime() === a.clock.now, {
    timeoutMs: 3000,
    message: 'written again after a minute',
  });

  const past = await a.call('POST', '/api/tokens', {
    headers: { cookie: agentCookie },
    body: { name: 'x', expires_at: '2000-01-01T00:00:00Z' },
  });
  t.equal(past.status, 400);
  t.match(past.body, { details: [{ field: 'body.expires_at' }] });
  const short = await a.call('POST', '/api/tokens', {
    headers: { cookie: agentCookie },
    body: { name: 'short', expires_at: new Date(a.clock.now + HOUR).toISOString() },
  });
  const shortBearer = { authorization: `Bearer ${String(short.body.token)}` };
  t.equal((await a.call('GET', '/api/session', { headers: shortBearer })).status, 200);
  a.clock.now += HOUR;
  t.match(await a.call('GET', '/api/session', { headers: shortBearer }), { status: 401, body: { error: /expired/ } });
  const bootstrapMade = await a.call('POST', '/api/tokens', { headers: BOOTSTRAP, body: { name: 'nope' } });
  t.equal(bootstrapMade.status, 403, 'the bootstrap token owns no tokens');
  t.equal((await a.call('GET', '/api/session', { headers: { authorization: 'Bearer hatch_pat_nope' } })).status, 401);
});

t.test("an admin lists and ends anyone's sessions and revokes anyone's tokens; audited; agents are refused", async (t) => {
  const a = await accountsGateway(t);
  const { admin, agent, adminCookie, agentCookie } = await withPeople(a);
  const asAdmin = { cookie: adminCookie };
  const second = await signIn(a, agent.email, agent.password);
  const pat = await a.call('POST', '/api/tokens', { headers: { cookie: agentCookie }, body: { name: 'laptop' } });
  const bearer = { authorization: `Bearer ${String(pat.body.token)}` };

  const sessions = await a.call('GET', `/api/users/${agent.id}/sessions`, { headers: asAdmin });
  t.equal(sessions.status, 200);
  const list = sessions.body.sessions as Array<{ id: string; current: boolean }>;
  t.equal(list.length, 2, "the agent's two sessions");
  t.ok(
    list.every((x) => !x.current),
    'none is the admin’s own',
  );
  const mine = await a.call('GET', `/api/users/${admin.id}/sessions`, { headers: asAdmin });
  t.equal((mine.body.sessions as Array<{ current: boolean }>).filter((x) => x.current).length, 1, 'the admin’s own marks this one');
  const tokens = await a.call('GET', `/api/users/${agent.id}/tokens`, { headers: asAdmin });
  t.match(tokens.body, { tokens: [{ id: pat.body.id, user_id: agent.id, name: 'laptop', revoked_at: null }] });
  t.notMatch(tokens.text, String(pat.body.token).slice(10), 'never the token itself');

  // The agent's stream on this session closes when the admin ends it.
  const whoIs = async (cookie: string) => {
    const r = await a.call('GET', '/api/sessions', { headers: { cookie } });
    return (r.body.sessions as Array<{ id: string; current: boolean }>).find((x) => x.current)?.id ?? '';
  };
  const target = await whoIs(second);
  const sse = await openSse(`${a.base}/api/events`, { cookie: second });
  t.teardown(() => sse.close());
  t.equal(sse.status, 200);
  const adminSession = await whoIs(adminCookie);
  const wrongOwner = await a.call('DELETE', `/api/users/${agent.id}/sessions/${adminSession}`, { headers: asAdmin });
  t.equal(wrongOwner.status, 404, 'a session of someone else than the person named is not found');
  t.match(wrongOwner.body, { success: false, code: 'NOT_FOUND' });
  const bad = await a.call('DELETE', `/api/users/${agent.id}/sessions/not-a-uuid`, { headers: asAdmin });
  t.equal(bad.status, 400);
  t.match(bad.body, { code: 'INVALID_REQUEST', details: [{ field: 'params.item_id' }] });
  t.equal((await a.call('GET', `/api/users/${NO_ID}/sessions`, { headers: asAdmin })).status, 404, 'an unknown person');
  t.equal((await a.call('DELETE', `/api/users/${agent.id}/sessions/${target}`, { headers: asAdmin })).status, 204, 'ended');
  t.equal((await a.call('GET', '/api/session', { headers: { cookie: second } })).status, 401, 'that session is signed out');
  await sse.waitFor((c) => c.ended(), 3000, 'and its event stream closed');
  t.equal((await a.call('GET', '/api/session', { headers: { cookie: agentCookie } })).status, 200, 'the other session goes on');
  t.equal((await a.call('DELETE', `/api/users/${agent.id}/sessions/${target}`, { headers: asAdmin })).status, 404, 'gone');

  t.equal(
    (await a.call('DELETE', `/api/users/${admin.id}/tokens/${String(pat.body.id)}`, { headers: asAdmin })).status,
    404,
    'not that person’s token',
  );
  t.equal((await a.call('DELETE', `/api/users/${agent.id}/tokens/${String(pat.body.id)}`, { headers: asAdmin })).status, 204, 'revoked');
  t.equal((await a.call('GET', '/api/session', { headers: bearer })).status, 401, 'the token is refused');
  t.equal(
    (await a.call('DELETE', `/api/users/${agent.id}/tokens/${String(pat.body.id)}`, { headers: asAdmin })).status,
    204,
    'twice is fine',
  );

  // Agents: 403 in the error shape on anyone's, their own included (theirs are /api/sessions, /api/tokens).
  for (const [method, path] of [
    ['GET', `/api/users/${admin.id}/sessions`],
    ['GET', `/api/users/${agent.id}/tokens`],
    ['DELETE', `/api/users/${admin.id}/sessions/${adminSession}`],
  ] as const) {
    const r = await a.call(method, path, { headers: { cookie: agentCookie } });
    t.equal(r.status, 403, `agent: ${method} ${path}`);
    t.match(r.body, { success: false, code: 'FORBIDDEN', error: String });
  }
  t.equal((await a.call('GET', '/api/session', { headers: asAdmin })).status, 200, "the admin's session was not touched");

  const audit = await a.call('GET', `/api/audit?user_id=${agent.id}&limit=200`, { headers: asAdmin });
  const rows = audit.body.events as Array<{ kind: string; actor_id: string | null; subject: Record<string, unknown> }>;
  t.match(
    rows.find((e) => e.kind === 'session_revoked'),
    { actor_id: admin.id, subject: { user_id: agent.id, session_id: target } },
    'session_revoked by the admin',
  );
  t.match(
    rows.find((e) => e.kind === 'token_revoked'),
    { actor_id: admin.id, subject: { user_id: agent.id, token_id: pat.body.id } },
    'token_revoked by the admin',
  );
  t.equal(rows.filter((e) => e.kind === 'token_revoked').length, 1, 'revoking twice is one row');
});

t.test("an admin changes a person's email: unique whatever its case (409), 400 naming body.email, audited", async (t) => {
  const a = await accountsGateway(t);
  const { admin, agent, adminCookie, agentCookie } = await withPeople(a);
  const asAdmin = { cookie: adminCookie };
  const patch = (id: string, body: unknown, headers: Record<string, string> = asAdmin) =>
    a.call('PATCH', `/api/users/${id}`, { headers, body });
  const changed = await patch(agent.id, { email: '  Bo.New@Example.com ' });
  t.equal(changed.status, 200);
  t.match(changed.body, { id: agent.id, email: 'Bo.New@Example.com' }, 'trimmed, case kept');
  t.equal(
    (await a.call('POST', '/api/session', { body: { email: agent.email, password: agent.password } })).status,
    401,
    'the old email no longer signs in',
  );
  t.ok(await signIn(a, 'bo.new@example.com', agent.password), 'the new one does, in any case');
  t.match(
    (await a.call('GET', '/api/session', { headers: { cookie: agentCookie } })).body,
    { user: { email: 'Bo.New@Example.com' } },
    'sessions go on, with the new email',
  );

  const clash = await patch(agent.id, { email: 'ADA@example.COM' });
  t.equal(clash.status, 409, "another person's email, in another case");
  t.match(clash.body, { success: false, code: 'CONFLICT', error: /email/ });
  t.equal((await patch(admin.id, { email: 'Ada@Example.com' })).status, 200, 'one’s own email in another case is fine');
  for (const email of ['not an email', 'x@', '']) {
    const r = await patch(agent.id, { email });
    t.equal(r.status, 400, `${JSON.stringify(email)} refused`);
    t.match(r.body, { success: false, code: 'INVALID_REQUEST', details: [{ field: 'body.email' }] });
  }
  const agentTry = await patch(admin.id, { email: 'mine@example.com' }, { cookie: agentCookie });
  t.equal(agentTry.status, 403, 'agents may not');
  const audit = await a.call('GET', `/api/audit?kind=user_email_changed`, { headers: asAdmin });
  t.match(audit.body, { events: [{ subject: { user_id: admin.id } }, { actor_id: admin.id, subject: { user_id: agent.id } }] });
  t.notMatch(audit.text, /bo\.new/i, 'ids only: not the new email');
});

t.test('audit rows for each kind, ids only; GET /api/audit filters by user and kind and pages', async (t) => {
  const a = await accountsGateway(t);
  const { admin, agent, adminCookie, agentCookie } = await withPeople(a);
  const admin2 = { cookie: adminCookie };
  await a.call('POST', '/api/session', { body: { email: agent.email, password: 'wrong password!' } });
  const pat = await a.call('POST', '/api/tokens', { headers: { cookie: agentCookie }, body: { name: 'a' } });
  await a.call('DELETE', `/api/tokens/${String(pat.body.id)}`, { headers: { cookie: agentCookie } });
  const extra = await signIn(a, agent.email, agent.password);
  const sessions = await a.call('GET', '/api/sessions', { headers: { cookie: extra } });
  const another = (sessions.body.sessions as Array<{ id: string; current: boolean }>).find((s) => !s.current);
  await a.call('DELETE', `/api/sessions/${another?.id}`, { headers: admin2 });
  await a.call('DELETE', '/api/session', { headers: { cookie: extra } });
  const inv = await a.call('POST', '/api/users', { headers: admin2, body: { email: 'fay@example.com', role: 'agent' } });
  await accept(a, String(inv.body.link), 'fay passphrase 1');
  const fayId = String((inv.body.user as { id: string }).id);
  await a.call('PATCH', `/api/users/${fayId}`, { headers: admin2, body: { role: 'admin' } });
  await a.call('PATCH', `/api/users/${fayId}`, { headers: admin2, body: { email: 'fay@example.org' } });
  await a.call('PATCH', `/api/users/${fayId}`, { headers: admin2, body: { disabled: true } });
  await a.call('PATCH', `/api/users/${fayId}`, { headers: admin2, body: { disabled: false } });
  await a.call('POST', `/api/users/${fayId}/reset`, { headers: admin2 });
  // message_sent, email_sent, message_retried (their details: attribution.test.ts)
  const chat = await a.call('POST', '/api/send_message', { headers: admin2, body: { to: 'dan', body: 'hi' } });
  await a.call('POST', '/api/send_email', { headers: admin2, body: { to_email: 'dan@example.com', subject: 's', body: 'b' } });
  const chatId = String(chat.body.message_id);
  await a.g.db.db
    .updateTable('messages')
    .set({ channel: 'sms', to_contact: '+14155550100', status: 'failed' })
    .where('id', '=', chatId)
    .execute();
  await a.call('POST', `/api/messages/${chatId}/retry`, { headers: admin2 });

  const all = await a.call('GET', '/api/audit?limit=200', { headers: admin2 });
  t.equal(all.status, 200);
  const events = all.body.events as Array<{
    kind: string;
    actor_id: string | null;
    actor_label: string | null;
    subject: Record<string, unknown>;
    address: string | null;
  }>;
  const kinds = new Set(events.map((e) => e.kind));
  for (const k of AUDIT_KINDS) t.ok(kinds.has(k), `an audit row of kind ${k}`);
  const failed = events.find((e) => e.kind === 'sign_in_failed');
  t.match(failed, { actor_label: agent.email, address: '127.0.0.1' }, 'a failed sign-in names the email tried and the address');
  t.match(
    events.find((e) => e.kind === 'session_revoked'),
    { actor_id: admin.id, subject: { user_id: agent.id, session_id: another?.id } },
  );
  t.match(
    events.find((e) => e.kind === 'user_role_changed'),
    { actor_id: admin.id, subject: { user_id: fayId } },
  );
  t.match(
    events.find((e) => e.kind === 'user_email_changed'),
    { actor_id: admin.id, subject: { user_id: fayId } },
  );
  for (const e of events) t.notMatch(JSON.stringify(e), /passphrase|hatch_pat_|password/, `${e.kind}: no secret`);

  const onlyFay = await a.call('GET', `/api/audit?user_id=${fayId}&kind=user_disabled`, { headers: admin2 });
  t.match(onlyFay.body, { events: [{ kind: 'user_disabled', subject: { user_id: fayId } }], next_cursor: null });
  const page1 = await a.call('GET', '/api/audit?limit=2', { headers: admin2 });
  const page2 = await a.call('GET', `/api/audit?limit=2&before=${String(page1.body.next_cursor)}`, { headers: admin2 });
  const ids = [...(page1.body.events as Array<{ id: string }>), ...(page2.body.events as Array<{ id: string }>)].map((e) => Number(e.id));
  t.same(
    ids,
    [...ids].sort((x, y) => y - x),
    'newest first across pages',
  );
  t.equal(new Set(ids).size, 4, 'no row twice');
  t.equal((await a.call('GET', '/api/audit?before=abc', { headers: admin2 })).status, 400);
});

t.test('no password, token, session id or invite link in any log line, nor in any answer after creation', async (t) => {
  // the production hash cost (the config's default), so the stored hash below is what production stores
  const a = await accountsGateway(t, { env: { HATCH_PASSWORD_SCRYPT_LOG2N: undefined } });
  const { admin, agent, adminCookie, agentCookie } = await withPeople(a);
  const secrets = [admin.password, agent.password, TEST_TOKEN, adminCookie.split('=')[1] ?? '', agentCookie.split('=')[1] ?? ''];
  const pat = await a.call('POST', '/api/tokens', { headers: { cookie: agentCookie }, body: { name: 'logged?' } });
  secrets.push(String(pat.body.token), String(pat.body.token).slice('hatch_pat_'.length));
  const inv = await a.call('POST', '/api/users', { headers: { cookie: adminCookie }, body: { email: 'gus@example.com', role: 'agent' } });
  const inviteToken = String(inv.body.link).split('#')[1] ?? '';
  secrets.push(inviteToken);
  await accept(a, String(inv.body.link), 'gus passphrase 12');
  secrets.push('gus passphrase 12');
  await a.call('POST', '/api/session', { body: { email: 'gus@example.com', password: 'wrong but secret 12' } });
  secrets.push('wrong but secret 12');
  await a.call('POST', '/api/session', { body: { token: 'a-wrong-bootstrap-token-guess' } });
  secrets.push('a-wrong-bootstrap-token-guess');
  await a.call('GET', '/api/session', { headers: { authorization: `Bearer ${String(pat.body.token)}` } });
  await a.call('GET', '/api/session', { headers: BOOTSTRAP });
  await a.call('POST', '/api/session', { body: { token: TEST_TOKEN } });

  const answers = await Promise.all(
    ['/api/tokens', '/api/sessions', '/api/users', '/api/audit?limit=200', '/api/session'].map((p) =>
      a.call('GET', p, { headers: { cookie: adminCookie } }),
    ),
  );
  answers.push(await a.call('GET', '/api/tokens', { headers: { cookie: agentCookie } }));
  t.ok(a.lines.length > 20, `${a.lines.length} log lines captured (level trace)`);
  for (const s of secrets) {
    t.ok(s.length >= 12, 'a real secret');
    t.notOk(
      a.lines.some((l) => l.includes(s)),
      `no log line carries ${s.slice(0, 4)}…`,
    );
    t.notOk(
      answers.some((r) => r.text.includes(s)),
      `no answer carries ${s.slice(0, 4)}…`,
    );
  }
  const rows = await a.g.db.sql`SELECT password_hash FROM users WHERE email = 'gus@example.com'`;
  t.match(rows[0]?.password_hash, /^\$scrypt\$ln=17,r=8,p=1\$/, 'stored as an OWASP-parameter scrypt hash');
});
