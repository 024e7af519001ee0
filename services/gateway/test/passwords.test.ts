import t from 'tap';
import {
  checkPassword,
  configuredScryptParams,
  createPasswordHasher,
  hashPassword,
  needsRehash,
  SCRYPT_PARAMS,
  verifyPassword,
} from '../src/passwords.js';
import { HttpError } from '../src/errors.js';
import { parseGatewayConfig } from '../src/config.js';

t.test('hashes are scrypt with OWASP parameters, self-describing, and verify', async (t) => {
  const stored = await hashPassword('correct horse battery');
  t.match(stored, /^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  t.same(SCRYPT_PARAMS, { ln: 17, r: 8, p: 1 });
  t.ok(await verifyPassword('correct horse battery', stored));
  t.notOk(await verifyPassword('correct horse batterY', stored));
  t.notOk(await verifyPassword('x', 'not a hash'));
  // a hash made with lower parameters still verifies, and asks to be rehashed
  const weak = await hashPassword('correct horse battery', { ln: 14, r: 8, p: 1 });
  t.ok(await verifyPassword('correct horse battery', weak));
  t.ok(needsRehash(weak));
  t.notOk(needsRehash(stored));
  // a tampered row asking for a gigabyte is refused, not computed
  t.notOk(await verifyPassword('correct horse battery', stored.replace('ln=17', 'ln=23')));
});

t.test("the gateway's hash cost is OWASP's unless set; a lower one (tests) is recorded in the hash and verifies", async (t) => {
  const env = { DATABASE_URL: 'postgres://x@127.0.0.1/x', HATCH_API_TOKEN: 'x'.repeat(32) };
  const production = parseGatewayConfig(env);
  t.equal(production.HATCH_PASSWORD_SCRYPT_LOG2N, 17);
  t.same(configuredScryptParams(production), { ln: 17, r: 8, p: 1 }, 'the default is OWASP scrypt');
  t.throws(() => parseGatewayConfig({ ...env, HATCH_PASSWORD_SCRYPT_LOG2N: '9' }), /HATCH_PASSWORD_SCRYPT_LOG2N/, 'no cost below 2^10');
  const low = configuredScryptParams(parseGatewayConfig({ ...env, HATCH_PASSWORD_SCRYPT_LOG2N: '10' }));
  const hasher = createPasswordHasher({ concurrency: 1, queueMax: 1, params: low });
  const stored = await hasher.hash('correct horse battery');
  t.match(stored, /^\$scrypt\$ln=10,r=8,p=1\$/);
  t.ok(await hasher.verify('correct horse battery', stored));
  t.ok(await verifyPassword('correct horse battery', stored), 'verifies whatever cost the verifier hashes at');
  t.ok(needsRehash(stored), 'and is weaker than the OWASP default');
});

t.test('password rules: 12 characters, 1024 bytes, not the email; 400 naming body.password', (t) => {
  const refuse = (pw: string, re: RegExp) => {
    try {
      checkPassword(pw, 'ada@example.com');
      t.fail(`accepted ${pw.length}`);
    } catch (err) {
      t.ok(err instanceof HttpError);
      const e = err as HttpError;
      t.equal(e.statusCode, 400);
      t.same(e.details?.[0]?.field, 'body.password');
      t.match(e.message, re);
    }
  };
  refuse('short-pass1', /at least 12/);
  refuse('é'.repeat(513), /at most 1024 bytes/);
  refuse('ADA@example.com', /email/);
  t.doesNotThrow(() => checkPassword('twelve chars', 'ada@example.com'));
  t.doesNotThrow(() => checkPassword('ééééééééééé€', 'ada@example.com'), '12 characters, more bytes');
  t.end();
});

t.test('hashing is bounded: past the wait queue, 503 with Retry-After at once', async (t) => {
  const hasher = createPasswordHasher({ concurrency: 1, queueMax: 1, params: { ln: 14, r: 8, p: 1 } });
  const first = hasher.hash('aaaaaaaaaaaa');
  const second = hasher.hash('bbbbbbbbbbbb');
  const third = hasher.hash('cccccccccccc');
  await t.rejects(third, { statusCode: 503, code: 'SERVICE_UNAVAILABLE', headers: { 'retry-after': '1' } });
  t.ok(await verifyPassword('aaaaaaaaaaaa', await first));
  t.ok(await verifyPassword('bbbbbbbbbbbb', await second));
  // the slots are free again
  t.ok(await hasher.verify('bbbbbbbbbbbb', await second));
});
