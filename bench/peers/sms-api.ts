/**
 * P2 peer, the API half (Fastify, as the gateway): `POST /api/send_message` stores the SMS
 * (sms-flow.ts) and enqueues its job (queues.ts), answering 202 after both; `POST /twilio/status`
 * takes Twilio's signed status callbacks (the signature checked with the SDK's
 * `validateRequest`, as Twilio's docs show) and writes the status. Prints {"bench":{"type":"ready"}}.
 *
 * Env: sms-flow.ts's and queues.ts's, PORT, HATCH_API_TOKEN (Bearer token, as the gateway asks).
 */
import Fastify from 'fastify';
import twilio from 'twilio';
import { producer } from './queues.js';
import { applyStatus, db, env, SCHEMA, say, storeSms } from './sms-flow.js';

const sql = db(10);
await sql.unsafe(SCHEMA);
const jobs = await producer();
const token = `Bearer ${env('HATCH_API_TOKEN')}`;
const authToken = env('TWILIO_AUTH_TOKEN');
const publicUrl = env('PUBLIC_URL');

const app = Fastify({ logger: false });
// Twilio posts application/x-www-form-urlencoded (the parser Fastify's docs show for it)
app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
  done(null, Object.fromEntries(new URLSearchParams(body as string)));
});

app.post<{ Body: { to: string; body: string } }>(
  '/api/send_message',
  {
    schema: {
      body: {
        type: 'object',
        required: ['to', 'body'],
        additionalProperties: false,
        properties: { to: { type: 'string', pattern: '^\\+[1-9][0-9]{6,14}$' }, body: { type: 'string', minLength: 1, maxLength: 1600 } },
      },
    },
  },
  async (req, reply) => {
    if (req.headers.authorization !== token) return reply.code(401).send({ error: 'unauthorized' });
    const id = await storeSms(sql, req.body.to, req.body.body);
    await jobs.send(id);
    return reply.code(202).send({ success: true, message_id: id, status: 'queued' });
  },
);

app.post<{ Querystring: { mid?: string }; Body: Record<string, string> }>('/twilio/status', async (req, reply) => {
  const signature = req.headers['x-twilio-signature'];
  if (typeof signature !== 'string' || !twilio.validateRequest(authToken, signature, `${publicUrl}${req.url}`, req.body)) {
    return reply.code(403).send({ error: 'bad signature' });
  }
  const status = req.body.MessageStatus;
  const mid = req.query.mid;
  if (!mid || !status) return reply.code(400).send({ error: 'mid and MessageStatus are required' });
  await applyStatus(sql, mid, status, 'twilio', req.body.MessageSid);
  return reply.code(204).send();
});

await app.listen({ host: '127.0.0.1', port: Number(env('PORT')) });
say({ type: 'ready' });
process.on('SIGTERM', () => {
  void app
    .close()
    .then(() => jobs.close())
    .then(() => sql.end({ timeout: 2 }))
    .finally(() => process.exit(0));
});
