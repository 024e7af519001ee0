import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { sql } from 'kysely';
import { createTestDb } from '@hatch/testing';
import {
  claimInvite,
  findUserByEmail,
  insertAuditEvent,
  insertInvite,
  insertSession,
  insertUser,
  listAuditEvents,
  purgeAuditEvents,
  touchSession,
} from '../src/index.js';

const hash = () => createHash('sha256').update(randomBytes(32)).digest();

t.test('users: the email is unique whatever its case, and found case-insensitively', async (t) => {
  const db = await createTestDb(t);
  const u = await insertUser(db.db, { name: 'Ada', email: 'Ada@Example.com', role: 'admin' });
  t.equal((await findUserByEmail(db.db, 'ada@example.COM'))?.id, u.id);
  await t.rejects(insertUser(db.db, { name: 'Other', email: 'ADA@example.com', role: 'agent' }), /users_email_unique/);
  await t.rejects(insertUser(db.db, { name: 'Bad', email: 'bad@example.com', role: 'owner' }), /users_role_check/);
});

t.test('audit_events is append-only: UPDATE and DELETE are refused, the retention purge deletes', async (t) => {
  const db = await createTestDb(t);
  await insertAuditEvent(db.db, { kind: 'sign_in', actor_label: 'a@example.com', subject: { user_id: null } });
  await t.rejects(sql`UPDATE audit_events SET kind = 'x'`.execute(db.db), /append-only/);
  await t.rejects(sql`DELETE FROM audit_events`.execute(db.db), /append-only/);
  t.equal((await listAuditEvents(db.db, { limit: 10 })).length, 1);
  t.equal(await purgeAuditEvents(db.db, new Date(Date.now() - 3600_000)), 0, 'a fresh row is inside the retention');
  t.equal(await purgeAuditEvents(db.db, new Date(Date.now() + 3600_000)), 1);
  t.equal((await listAuditEvents(db.db, { limit: 10 })).length, 0);
});

t.test('an invite is used once, and never after it expires', async (t) => {
  const db = await createTestDb(t);
  const u = await insertUser(db.db, { name: 'Bo', email: 'bo@example.com', role: 'agent' });
  const now = new Date();
  const once = hash();
  await insertInvite(db.db, { token_hash: once, user_id: u.id, purpose: 'invite', expires_at: new Date(now.getTime() + 60_000) });
  t.ok(await claimInvite(db.db, once, now));
  t.notOk(await claimInvite(db.db, once, now), 'second use refused');
  const late = hash();
  await insertInvite(db.db, { token_hash: late, user_id: u.id, purpose: 'invite', expires_at: new Date(now.getTime() + 60_000) });
  t.notOk(await claimInvite(db.db, late, new Date(now.getTime() + 60_001)), 'expired');
});

t.test('touchSession writes at most once per gap', async (t) => {
  const db = await createTestDb(t);
  const h = hash();
  const t0 = new Date();
  await insertSession(db.db, { id_hash: h, user_id: null, expires_at: new Date(t0.getTime() + 3600_000), last_seen_at: t0 });
  t.notOk(await touchSession(db.db, h, new Date(t0.getTime() + 30_000), 60_000));
  t.ok(await touchSession(db.db, h, new Date(t0.getTime() + 61_000), 60_000));
  t.notOk(await touchSession(db.db, h, new Date(t0.getTime() + 62_000), 60_000));
});
