/**
 * Rehash on sign-in (SECURITY.md "Passwords"): a stored hash weaker than
 * HATCH_PASSWORD_SCRYPT_LOG2N is replaced at the next right password, never by a wrong one, never
 * over a password changed meanwhile, and a failed write never fails the sign-in. Costs 10 and 11
 * (not OWASP's 17) keep it fast.
 */
import t from 'tap';
import { replacePasswordHash } from '@hatch/db';
import { hashPassword, verifyPassword } from '../src/passwords.js';
import { TEST_SCRYPT_LOG2N } from './helpers.js';
import { accountsGateway, seedUser, type AccountsGateway } from './accounts-harness.js';

const RAISED = String(Number(TEST_SCRYPT_LOG2N) + 1);

const storedHash = async (a: AccountsGateway, id: string): Promise<string> => {
  const [row] = await a.g.db.sql`SELECT password_hash FROM users WHERE id = ${id}`;
  return String(row?.password_hash);
};

t.test('a hash weaker than the configured cost is replaced at sign-in; a wrong password changes nothing', async (t) => {
  const a = await accountsGateway(t, { env: { HATCH_PASSWORD_SCRYPT_LOG2N: RAISED } });
  const user = await seedUser(a.g, { email: 'old@example.com', role: 'agent', password: 'an old passphrase' });
  const before = await storedHash(a, user.id);
  t.match(before, `$scrypt$ln=${TEST_SCRYPT_LOG2N},r=8,p=1$`, 'seeded at the lower cost');

  const wrong = await a.call('POST', '/api/session', { body: { email: user.email, password: 'not the passphrase' } });
  t.equal(wrong.status, 401);
  t.equal(await storedHash(a, user.id), before, 'a wrong password leaves the hash as it was');

  const right = await a.call('POST', '/api/session', { body: { email: user.email, password: user.password } });
  t.equal(right.status, 204, 'signed in');
  const after = await storedHash(a, user.id);
  t.match(after, `$scrypt$ln=${RAISED},r=8,p=1$`, 'stored again at the configured cost');
  t.ok(await verifyPassword(user.password, after), 'and the new hash verifies the password');
  t.notOk(await verifyPassword('not the passphrase', after));

  const again = await a.call('POST', '/api/session', { body: { email: user.email, password: user.password } });
  t.equal(again.status, 204);
  t.equal(await storedHash(a, user.id), after, 'a hash at the configured cost is left alone');
  t.notOk(
    a.lines.some((l) => l.includes(user.password) || l.includes(before.split('$')[4] ?? '?') || l.includes(after.split('$')[4] ?? '?')),
    'no password or hash in any log line',
  );
});

t.test('the rehash write is conditional: a password changed since the check is never overwritten', async (t) => {
  const a = await accountsGateway(t, { env: { HATCH_PASSWORD_SCRYPT_LOG2N: RAISED } });
  const user = await seedUser(a.g, { email: 'race@example.com', role: 'agent', password: 'a racing passphrase' });
  const verified = await storedHash(a, user.id);
  const changed = await hashPassword('changed meanwhile!!', { ln: Number(RAISED), r: 8, p: 1 });
  await a.g.db.sql`UPDATE users SET password_hash = ${changed} WHERE id = ${user.id}`;
  const rehash = await hashPassword(user.password, { ln: Number(RAISED), r: 8, p: 1 });
  t.notOk(await replacePasswordHash(a.g.db.db, user.id, verified, rehash), 'not replaced');
  t.equal(await storedHash(a, user.id), changed, 'the changed password stays');
  t.ok(await replacePasswordHash(a.g.db.db, user.id, changed, rehash), 'replaced while the row holds the expected hash');
});

t.test('a failed rehash write is one warn line, and the sign-in still succeeds', async (t) => {
  const a = await accountsGateway(t, { env: { HATCH_PASSWORD_SCRYPT_LOG2N: RAISED } });
  const user = await seedUser(a.g, { email: 'stuck@example.com', role: 'agent', password: 'a stuck passphrase' });
  const before = await storedHash(a, user.id);
  await a.g.db.sql.unsafe(`
    CREATE FUNCTION refuse_hash() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
    CREATE TRIGGER refuse_hash BEFORE UPDATE OF password_hash ON users FOR EACH ROW EXECUTE FUNCTION refuse_hash();
  `);
  const r = await a.call('POST', '/api/session', { body: { email: user.email, password: user.password } });
  t.equal(r.status, 204, 'signed in all the same');
  t.ok(r.cookie, 'with a session cookie');
  t.equal(await storedHash(a, user.id), before, 'the old hash stays');
  const warns = a.lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.msg.startsWith('password rehash'));
  t.equal(warns.length, 1);
  t.equal(warns[0]?.level, 40, 'at warn');
  t.notOk(
    a.lines.some((l) => l.includes(user.password)),
    'the password is in no log line',
  );
});
