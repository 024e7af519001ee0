/**
 * P2 peer, the worker half (as the sms-sender): consumes the SMS jobs from BullMQ or pg-boss
 * (queues.ts) and runs each through sms-flow.ts's `sendSmsJob` (claim → Twilio SDK → `sent`).
 * Prints {"bench":{"type":"ready"}}.
 */
import { consumer } from './queues.js';
import { db, say, sendSmsJob, twilioClient } from './sms-flow.js';

const sql = db(16);
const client = twilioClient();
const worker = await consumer((id) => sendSmsJob(sql, client, id));
say({ type: 'ready' });
process.on('SIGTERM', () => {
  void worker
    .close()
    .then(() => sql.end({ timeout: 2 }))
    .finally(() => process.exit(0));
});
