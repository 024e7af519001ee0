/**
 * Issue 18: an expired session or token stops its open event streams too, on every replica,
 * within STREAM_CHECK_MS, not only its new requests. Over real sockets, with real SSE clients,
 * against a second replica that believes a found credential for a minute (only the check of
 * open streams can close them sooner). Expiry is made by moving the rows' times in PostgreSQL.
 */
import t from 'tap';
import { STREAM_CHECK_MS } from '../src/realtime/stream-credentials.js';
import { openSse, type SseClient } from './sse-client.js';
import { accountsGateway, seedUser, signIn } from './accounts-harness.js';

/** the bound, plus room for one query and a busy machine */
const BOUND_MS = STREAM_CHECK_MS + 2000;

t.test("an expired session's or token's open event streams close within the bound; valid ones stay open", async (t) => {
  const a = await accountsGateway(t);
  const b = await accountsGateway(t, { replicaOf: a.g, build: { authCacheTtlMs: 60_000 } });
  const agent = await seedUser(a.g, { email: 'bo@example.com', role: 'agent', password: 'agent passphrase 1' });
  const cookies = {
    absolute: await signIn(a, agent.email, agent.password),
    idle: await signIn(a, agent.email, agent.password),
    valid: await signIn(a, agent.email, agent.password),
    later: await signIn(a, agent.email, agent.password),
  };
  const pat = await a.call('POST', '/api/tokens', { headers: { cookie: cookies.valid }, body: { name: 'stream' } });
  t.equal(pat.status, 201);
  const streams: Record<string, SseClient> = {};
  for (const [k, cookie] of Object.entries(cookies)) streams[k] = await openSse(`${b.base}/api/events`, { cookie });
  streams.token = await openSse(`${b.base}/api/events`, { authorization: `Bearer ${String(pat.body.token)}` });
  for (const [k, s] of Object.entries(streams)) {
    t.teardown(() => s.close());
    t.equal(s.status, 200, `${k}: stream open on replica B`);
    await s.waitFor((c) => c.of('connected').length === 1, 5000, `${k}: connected`);
  }
  const sessionId = async (cookie: string) => {
    const r = await a.call('GET', '/api/sessions', { headers: { cookie } });
    return (r.body.sessions as Array<{ id: string; current: boolean }>).find((s) => s.current)?.id ?? '';
  };
  const ids = { absolute: await sessionId(cookies.absolute), idle: await sessionId(cookies.idle), later: await sessionId(cookies.later) };

  // Absolute expiry passed, idle time passed (default 7 days), a token's expiry passed.
  const started = Date.now();
  await a.g.db.sql`UPDATE sessions SET expires_at = now() - interval '1 hour' WHERE id = ${ids.absolute}`;
  await a.g.db.sql`UPDATE sessions SET last_seen_at = now() - interval '8 days' WHERE id = ${ids.idle}`;
  await a.g.db.sql`UPDATE api_tokens SET expires_at = now() - interval '1 hour' WHERE id = ${String(pat.body.id)}`;
  for (const k of ['absolute', 'idle', 'token']) {
    await streams[k]?.waitFor((c) => c.ended(), BOUND_MS, `${k}: the expired credential's stream closed`);
  }
  const took = Date.now() - started;
  t.ok(took < BOUND_MS, `closed within ${took} ms (bound ${STREAM_CHECK_MS} ms + one query)`);
  t.equal(
    (await b.call('GET', '/api/session', { headers: { cookie: cookies.absolute } })).status,
    401,
    'and its requests are refused on that replica at once (its cached lookup is dropped)',
  );

  // One more expiry: the check that closes it also judged the valid session, which stays open.
  await a.g.db.sql`UPDATE sessions SET expires_at = now() - interval '1 hour' WHERE id = ${ids.later}`;
  await streams.later?.waitFor((c) => c.ended(), BOUND_MS, 'the later expiry closed its stream');
  t.notOk(streams.valid?.ended(), 'the valid session keeps its stream');
  t.equal((await b.call('GET', '/api/session', { headers: { cookie: cookies.valid } })).status, 200, 'and works');
});
