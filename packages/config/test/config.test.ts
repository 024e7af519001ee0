import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import Type from 'typebox';
import { ConfigError, databaseSettings, databaseUrlFrom, envWithDatabaseUrl, loadConfig } from '../src/index.js';

const Schema = Type.Object({
  PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 5002 }),
  DEBUG: Type.Boolean({ default: false }),
  API_TOKEN: Type.String({ minLength: 16 }),
  NAME: Type.String({ minLength: 1, default: 'me' }),
  OPTIONAL_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
});

t.test('defaults apply and strings are coerced to numbers and booleans', async (t) => {
  const c = loadConfig(Schema, { PORT: '8080', DEBUG: 'true', API_TOKEN: 'x'.repeat(16) });
  t.equal(c.PORT, 8080);
  t.equal(c.DEBUG, true);
  t.equal(c.NAME, 'me');
  t.equal(c.OPTIONAL_URL, undefined);
  t.ok(Object.isFrozen(c), 'config is frozen');
});

t.test('every missing or malformed setting is reported at once, naming each', async (t) => {
  const err = t.throws(() => loadConfig(Schema, { PORT: 'abc', DEBUG: 'maybe', OPTIONAL_URL: 'ftp://x' })) as unknown as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.problems.length, 4);
  t.match(err.problems.join('\n'), /PORT: must be an integer/);
  t.match(err.problems.join('\n'), /DEBUG: must be true or false/);
  t.match(err.problems.join('\n'), /API_TOKEN: missing/);
  t.match(err.problems.join('\n'), /OPTIONAL_URL: must be matching/);
});

t.test('secret values are not echoed in problems', async (t) => {
  const err = t.throws(() => loadConfig(Schema, { API_TOKEN: 'short-secret' })) as unknown as ConfigError;
  t.match(err.problems[0], /API_TOKEN: .*<hidden>/);
  t.notMatch(err.problems.join(' '), /short-secret/);
});

t.test('NAME_FILE reads a secret from a file, trailing newline trimmed', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'token');
  fs.writeFileSync(file, 'a-very-long-secret-token\n');
  const c = loadConfig(Schema, { API_TOKEN_FILE: file });
  t.equal(c.API_TOKEN, 'a-very-long-secret-token');
  const err = t.throws(() => loadConfig(Schema, { API_TOKEN_FILE: path.join(dir, 'missing') })) as unknown as ConfigError;
  t.match(err.problems[0], /API_TOKEN_FILE: cannot read .*ENOENT/);
});

t.test('out-of-range numbers are refused with the range', async (t) => {
  const err = t.throws(() => loadConfig(Schema, { PORT: '70000', API_TOKEN: 'x'.repeat(16) })) as unknown as ConfigError;
  t.match(err.problems[0], /PORT: must be an integer >= 1 <= 65535 \(got "70000"\)/);
});

t.test('DATABASE_URL is built from POSTGRES_* parts when not given', async (t) => {
  t.equal(databaseUrlFrom({ DATABASE_URL: 'postgres://a/b' }), 'postgres://a/b');
  t.equal(databaseUrlFrom({}), 'postgres://localhost:5432/hatch');
  t.equal(
    databaseUrlFrom({ POSTGRES_HOST: 'db', POSTGRES_PORT: '6543', POSTGRES_USER: 'u', POSTGRES_PASSWORD: 'p@ss', POSTGRES_DB: 'x' }),
    'postgres://u:p%40ss@db:6543/x',
  );
});

t.test('an unreadable DATABASE_URL_FILE is reported, not replaced by the local default', async (t) => {
  const missing = path.join(os.tmpdir(), `hatch-config-missing-${process.pid}`);
  const Db = Type.Object(databaseSettings(10));
  const err = t.throws(() => loadConfig(Db, envWithDatabaseUrl({ DATABASE_URL_FILE: missing }))) as unknown as ConfigError;
  t.match(err.problems, [new RegExp(`DATABASE_URL_FILE: cannot read ${missing} \\(ENOENT\\)`)]);
  t.equal(
    loadConfig(Db, envWithDatabaseUrl({})).DATABASE_URL,
    'postgres://localhost:5432/hatch',
    'with nothing set, the local default still applies',
  );
});

t.test('a setting checked by a refinement is described by its description', async (t) => {
  const S = Type.Object({ FROM: Type.Refine(Type.String({ description: 'an address with a dot' }), (v: string) => v.includes('.')) });
  const err = t.throws(() => loadConfig(S, { FROM: 'nodot' })) as unknown as ConfigError;
  t.equal(err.problems[0], 'FROM: must be an address with a dot (got "nodot")');
  t.equal(loadConfig(S, { FROM: 'a.b' }).FROM, 'a.b');
});
