/** kill -9 of the email-sender mid-batch (T1 of docs/reliability.md#fault-tests, for email): every email is sent exactly once after the restart. */
import t from 'tap';
import { waitFor } from '@hatch/testing';
import { emailPipeline } from './harness.js';

t.test('kill -9 the email-sender while SendGrid holds its requests: after a restart every email is sent exactly once', async (t) => {
  const p = await emailPipeline(t);
  // SendGrid accepts each request, then holds the answer: the worker is killed inside the call,
  // after the provider took the mail and before the status write.
  p.emulator.faults.add({ provider: 'sendgrid', kind: 'hang', hangMs: 60_000 });
  const env = { EMAIL_CONCURRENCY: '8', SENDGRID_TIMEOUT_MS: '30000' };
  const first = p.spawnWorker(env);
  await first.waitForLog((l) => l.msg === 'email-sender ready', 20_000);
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push(await p.send({ to_email: `r${i}@example.com`, subject: `crash ${i}`, body: 'b' }));
  await waitFor(() => ids.every((id) => p.sendsOf(id).some((r) => r.accepted && r.httpStatus === null)), {
    timeoutMs: 20_000,
    message: 'every request held inside SendGrid',
  });
  await first.kill9();
  p.emulator.faults.reset('sendgrid');

  const second = p.spawnWorker(env);
  await second.waitForLog((l) => l.msg === 'email-sender ready', 20_000);
  for (const id of ids) await p.waitForStatus(id, ['sent', 'delivered'], 30_000);
  await p.waitForDrained(30_000);
  for (const id of ids) t.equal(p.sendsOf(id).filter((r) => r.accepted).length, 1, `${id}: exactly one send`);
  t.ok(
    second.logs().every((l) => !/resending/.test(String(l.msg))),
    'nothing resent after the restart',
  );
});
