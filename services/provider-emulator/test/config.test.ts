import t from 'tap';
import { ConfigError } from '@hatch/config';
import { DEFAULTS, emulatorOptions, parseEmulatorConfig, parseFaultsEnv } from '../src/index.js';

t.test('every setting has a working default', async (t) => {
  const config = parseEmulatorConfig({});
  t.match(config, {
    EMULATOR_PORT: 5090,
    EMULATOR_HOST: '127.0.0.1',
    EMULATOR_TWILIO_ACCOUNT_SID: DEFAULTS.accountSid,
    EMULATOR_TWILIO_INBOUND_URL: 'http://localhost:5002/webhooks/twilio/sms',
    EMULATOR_SENDGRID_WEBHOOK_URL: 'http://localhost:5002/webhooks/sendgrid/events',
    EMULATOR_CALLBACK_DELAY_MS: 300,
    EMULATOR_MAX_RECORDS: 10_000,
    LOG_LEVEL: 'info',
  });
  t.match(config.EMULATOR_TWILIO_ACCOUNT_SID, /^AC[0-9a-f]{32}$/);
  t.equal(config.EMULATOR_SENDGRID_SIGNING_KEY, undefined);
  t.same(emulatorOptions(config).faults, []);
});

t.test('malformed settings are all reported at once', async (t) => {
  const err = t.throws(() =>
    parseEmulatorConfig({
      EMULATOR_PORT: 'abc',
      EMULATOR_TWILIO_ACCOUNT_SID: 'AC123',
      EMULATOR_SENDGRID_WEBHOOK_URL: 'localhost:5002',
      EMULATOR_CALLBACK_DELAY_MS: '-1',
    }),
  );
  t.ok(err instanceof ConfigError);
  const text = (err as ConfigError).problems.join('\n');
  for (const name of ['EMULATOR_PORT', 'EMULATOR_TWILIO_ACCOUNT_SID', 'EMULATOR_SENDGRID_WEBHOOK_URL', 'EMULATOR_CALLBACK_DELAY_MS'])
    t.match(text, name);
});

t.test('EMULATOR_FAULTS takes one fault or an array and names bad entries', async (t) => {
  t.same(parseFaultsEnv('{"provider":"twilio","kind":"429","count":2}'), [{ provider: 'twilio', kind: '429', count: 2 }]);
  t.equal(parseFaultsEnv('[{"provider":"twilio","kind":"500"},{"provider":"sendgrid","kind":"drop"}]').length, 2);
  t.throws(() => parseFaultsEnv('not json'), /EMULATOR_FAULTS: must be JSON/);
  const err = t.throws(() => parseFaultsEnv('[{"provider":"twilio","kind":"500"},{"provider":"mailgun","kind":"500"}]')) as ConfigError;
  t.match(err.problems[0], /^EMULATOR_FAULTS\[1\]: provider/);
  t.throws(() => parseEmulatorConfig({ EMULATOR_FAULTS: '{"provider":"twilio"}' }), ConfigError);
});

t.test('the config maps onto the library options', async (t) => {
  const options = emulatorOptions(
    parseEmulatorConfig({
      EMULATOR_PORT: '0',
      EMULATOR_TWILIO_AUTH_TOKEN: 'token-1234',
      EMULATOR_CALLBACK_DELAY_MS: '5',
      EMULATOR_FAULTS: '{"provider":"sendgrid","kind":"503"}',
    }),
  );
  t.match(options, { port: 0, callbackDelayMs: 5, twilio: { authToken: 'token-1234' }, faults: [{ provider: 'sendgrid', kind: '503' }] });
});
