import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger } from '../src/index.js';

function capture() {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on('data', (chunk: Buffer) => {
    for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  return { stream, lines };
}

t.test('lines are JSON with the service base field and a component per child', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 'gateway', destination: stream });
  log.child({ component: 'http' }).info({ messageId: 'm1' }, 'hello');
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 1);
  t.match(lines[0], { service: 'gateway', component: 'http', messageId: 'm1', msg: 'hello', level: 30 });
});

t.test('authorization, cookies, tokens and provider keys are redacted', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 's', destination: stream });
  log.info(
    {
      req: { headers: { authorization: 'Bearer secret-1', cookie: 'hatch_session=secret-2' } },
      config: { HATCH_API_TOKEN: 'secret-3', TWILIO_AUTH_TOKEN: 'secret-4', SENDGRID_API_KEY: 'secret-5' },
      token: 'secret-6',
    },
    'x',
  );
  await new Promise((r) => setImmediate(r));
  const text = JSON.stringify(lines[0]);
  for (let i = 1; i <= 6; i++) t.notMatch(text, `secret-${i}`, `secret-${i} is not logged`);
  t.match(text, /\[redacted\]/);
});

t.test('level filters lower lines', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 's', level: 'warn', destination: stream });
  log.info('hidden');
  log.warn('shown');
  await new Promise((r) => setImmediate(r));
  t.same(lines.map((l) => l.msg), ['shown']);
});
