/**
 * ./setup.sh's first admin (issue 18): `pnpm admin:first`, the command setup runs after the
 * migrations, against a real database. On a terminal setup hands it the typed name, email and
 * password on stdin (`--prompted`): the backend's password rules refuse with exit 3 and write
 * nothing, a good answer is an admin whose password signs in. Without a terminal (`--yes`) it makes
 * a pending admin with a one-time link. Never a second admin, even when two run at once. The whole
 * `./setup.sh --yes` run is in setup.test.ts.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { createTestDb, freePort, REPO_ROOT, testNats } from '@hatch/testing';
import { verifyPassword } from '../../services/gateway/src/passwords.js';
import { copyCheckout, setupEnv } from './setup-helpers.js';

interface Out {
  code: number | null;
  stdout: string;
  stderr: string;
}

function adminFirst(url: string, args: string[], stdin = ''): Promise<Out> {
  return new Promise((resolve, reject) => {
    const child = spawn('pnpm', ['-s', 'admin:first', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, DATABASE_URL: url, PUBLIC_URL: 'https://hatch.example.test', HATCH_INVITE_HOURS: '2' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

t.setTimeout(420_000);

t.test('typed answers: the password rules refuse (exit 3, nothing written); a good answer is an admin who can sign in', async (t) => {
  const db = await createTestDb(t);
  const users = () => db.db.selectFrom('users').selectAll().execute();
  const cases: Array<[string, string]> = [
    ['Ada\nada@example.com\nshort pw\n', 'password must be at least 12 characters'],
    ['Ada\nada@example.com\nada@example.com\n', 'password must not be the email address'],
    ['Ada\nnot-an-email\nlong enough passphrase\n', 'email must be an email address'],
    ['\nada@example.com\nlong enough passphrase\n', 'name must be 1 to 200 characters'],
  ];
  // independent runs that write nothing: at once
  const [before, ...refused] = await Promise.all([
    adminFirst(db.url, ['--status']),
    ...cases.map(([stdin]) => adminFirst(db.url, ['--prompted'], stdin)),
  ]);
  t.match(before, { code: 0, stdout: 'none\n' });
  cases.forEach(([, reason], i) => {
    t.equal(refused[i]?.code, 3, reason);
    t.equal(refused[i]?.stderr.trim(), reason);
  });
  t.same(await users(), [], 'nothing written');

  const password = 'a long admin passphrase';
  const made = await adminFirst(db.url, ['--prompted'], `Ada Lovelace\nada@example.com\n${password}\n`);
  t.match(made, { code: 0, stdout: 'created ada@example.com\n' });
  t.notMatch(made.stdout + made.stderr, password, 'the password is never printed');
  const [ada, ...rest] = await users();
  t.same(rest, [], 'one user');
  t.match(ada, { name: 'Ada Lovelace', email: 'ada@example.com', role: 'admin' });
  t.ok(await verifyPassword(password, ada?.password_hash ?? ''), 'the stored hash verifies the password');

  // once an admin exists (all three at once: none may add a second one)
  const [status, again, prompted] = await Promise.all([
    adminFirst(db.url, ['--status']),
    adminFirst(db.url, []),
    adminFirst(db.url, ['--prompted'], `Bo\nbo@example.com\n${password}\n`),
  ]);
  t.match(status, { code: 0, stdout: 'exists ada@example.com\n' });
  t.match(again, { code: 0, stdout: 'exists ada@example.com\n' }, '--yes after an admin exists: nothing to do, no link');
  t.match(prompted, { code: 0, stdout: 'exists ada@example.com\n' }, 'no second admin from the prompts either');
  t.equal((await users()).length, 1);
  t.same(
    (await db.db.selectFrom('audit_events').select(['kind', 'actor_label']).execute()).map((e) => [e.kind, e.actor_label]),
    [['user_created', 'setup']],
    'audited',
  );
});

t.test('--yes: a pending admin and a one-time link; run twice (even at once) there is still one admin', async (t) => {
  const db = await createTestDb(t);
  const [a, b] = await Promise.all([adminFirst(db.url, []), adminFirst(db.url, [])]);
  const links = [a, b].map((r) =>
    /^link admin@localhost (https:\/\/hatch\.example\.test\/invite#[A-Za-z0-9_-]{43}) (\S+)\n$/.exec(r.stdout),
  );
  t.ok(
    links.every((l) => l),
    `both print a link: ${a.stdout} ${b.stdout} ${a.stderr} ${b.stderr}`,
  );
  const admins = await db.db.selectFrom('users').selectAll().execute();
  t.equal(admins.length, 1, 'one admin');
  t.match(admins[0], { email: 'admin@localhost', role: 'admin', password_hash: null });
  t.match(await adminFirst(db.url, ['--status']), { stdout: 'pending admin@localhost\n' });
  const expiry = Date.parse(links[0]?.[2] ?? '');
  t.ok(Math.abs(expiry - (Date.now() + 2 * 3600_000)) < 120_000, 'valid HATCH_INVITE_HOURS');
  const live = await db.db.selectFrom('invites').selectAll().where('used_at', 'is', null).where('expires_at', '>', new Date()).execute();
  t.equal(live.length, 1, 'only the newest link works');
  t.match(live[0], { purpose: 'invite', user_id: admins[0]?.id });
});

t.test('on a terminal, ./setup.sh asks name, email and password (hidden, twice, the rules) and creates that admin', async (t) => {
  const dir = await copyCheckout(t);
  const db = await createTestDb(t);
  const nats = testNats(t);
  const env = setupEnv({ DATABASE_URL: db.url, NATS_URL: nats.url, HATCH_NATS_PREFIX: nats.prefix, PORT: String(await freePort()) });
  // A pseudo-terminal (script(1)): setup is interactive, and each answer is typed when its question shows.
  const child = spawn('script', ['-qfec', './setup.sh --no-start', '/dev/null'], { cwd: dir, env });
  let out = '';
  let asked = 0;
  const password = 'a long admin passphrase';
  const answers: Array<[RegExp, string]> = [
    [/Choose \[/, ''], // development
    [/Gateway port/, ''],
    [/Your name/, 'Ada Lovelace'],
    [/Your email/, 'ada@example.com'],
    [/Password \(at least/, 'too short'],
    [/Password again/, 'too short'],
    // refused by the rules: asked again
    [/must be at least 12 characters[\s\S]*Your name/, 'Ada Lovelace'],
    [/Your email/, 'ada@example.com'],
    [/Password \(at least/, password],
    [/Password again/, 'a different passphrase'],
    [/passwords differ[\s\S]*Your name/, 'Ada Lovelace'],
    [/Your email/, 'ada@example.com'],
    [/Password \(at least/, password],
    [/Password again/, password],
  ];
  let seen = 0; // answers are matched in what came after the previous one
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const next = answers[asked];
    if (next && next[0].test(out.slice(seen))) {
      seen = out.length;
      asked++;
      child.stdin.write(`${next[1]}\r`);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0, `setup exits 0\n${out.slice(-3000)}`);
  t.equal(asked, answers.length, 'every question was asked');
  t.match(out, /build up to date/, "the copy's build is used (copyCheckout): setup does not build again");
  t.notMatch(out, password, 'the password is not shown');
  t.match(out, 'admin account: ada@example.com');
  const admins = await db.db.selectFrom('users').selectAll().execute();
  t.equal(admins.length, 1);
  t.match(admins[0], { name: 'Ada Lovelace', email: 'ada@example.com', role: 'admin' });
  t.ok(await verifyPassword(password, admins[0]?.password_hash ?? ''), 'with the password typed');
  t.notMatch(out, /invite#/, 'no link when the admin was asked for');
});
