/**
 * What P2's two peer flows (BullMQ + Redis, pg-boss) share: the same send flow as Hatch's, built
 * the plain way a team would with those libraries. Rows in PostgreSQL (postgres.js, prepared):
 * a message with its conversation upsert and first timeline row at intake, claimed before the
 * provider is called (a redelivered job never sends twice), `sent` with the provider's SID after,
 * and each signed status callback as one forward-only status statement with its timeline row.
 * Twilio through the official `twilio` SDK, pointed at the provider emulator.
 *
 * Less than Hatch writes (so the comparison leans towards the peers): no change journal and no
 * realtime relay, no outbox (the job is enqueued after the commit), no daily SMS counter, no
 * opt-out check, no idempotency keys, random v4 ids.
 *
 * Env: DATABASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER, TWILIO_API_URL
 * (the emulator), PUBLIC_URL (the peer API, for status callbacks).
 */
import postgres from 'postgres';
import twilio from 'twilio';
import type TwilioRequestClient from 'twilio/lib/base/RequestClient.js';

export const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

export const say = (m: unknown) => process.stdout.write(`${JSON.stringify({ bench: m })}\n`);

export const SCHEMA = `
  CREATE TABLE IF NOT EXISTS conversations (
    id uuid PRIMARY KEY, participants text[] NOT NULL, last_message_id uuid, last_message_at timestamptz NOT NULL DEFAULT now(),
    message_count integer NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE IF NOT EXISTS messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), conversation_id uuid NOT NULL REFERENCES conversations (id),
    to_contact text NOT NULL, from_contact text NOT NULL, body text NOT NULL, status text NOT NULL,
    provider_sid text UNIQUE, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE IF NOT EXISTS status_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, message_id uuid NOT NULL REFERENCES messages (id),
    status text NOT NULL, source text NOT NULL, occurred_at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE INDEX IF NOT EXISTS status_events_by_message ON status_events (message_id, id);`;

export function db(max = 10) {
  return postgres(env('DATABASE_URL'), { max, onnotice: () => {} });
}

export type Sql = ReturnType<typeof db>;

/** Intake: conversation upsert, message, first timeline row; one statement, one commit. Returns the message id. */
export async function storeSms(sql: Sql, to: string, body: string): Promise<string> {
  const from = env('TWILIO_PHONE_NUMBER');
  const [row] = await sql<{ id: string }[]>`
    WITH ids AS (SELECT gen_random_uuid() AS id, md5(${from} || '|' || ${to})::uuid AS cid),
    conv AS (
      INSERT INTO conversations AS c (id, participants, last_message_id, last_message_at, message_count)
      SELECT cid, ARRAY[${from}, ${to}], id, now(), 1 FROM ids
      ON CONFLICT (id) DO UPDATE SET message_count = c.message_count + 1, last_message_id = excluded.last_message_id,
        last_message_at = now(), updated_at = now()),
    m AS (
      INSERT INTO messages (id, conversation_id, to_contact, from_contact, body, status)
      SELECT id, cid, ${to}, ${from}, ${body}, 'queued' FROM ids RETURNING id),
    tl AS (INSERT INTO status_events (message_id, status, source) SELECT id, 'queued', 'api' FROM m)
    SELECT id FROM m`;
  if (!row) throw new Error('message not stored');
  return row.id;
}

const ORDER = `ARRAY['queued', 'sending', 'sent', 'delivered']`;

/** A status change: forward only, with its timeline row (written whether or not the status moved). */
export async function applyStatus(sql: Sql, id: string, status: string, source: string, sid?: string): Promise<void> {
  await sql`
    WITH moved AS (
      UPDATE messages SET status = ${status}, provider_sid = coalesce(${sid ?? null}, provider_sid), updated_at = now()
      WHERE id = ${id} AND array_position(${sql.unsafe(ORDER)}, status) < array_position(${sql.unsafe(ORDER)}, ${status}::text)
      RETURNING id)
    INSERT INTO status_events (message_id, status, source) VALUES (${id}, ${status}, ${source})`;
}

/** The Twilio client of the official SDK, its requests sent to the emulator's origin instead of api.twilio.com. */
export function twilioClient() {
  const base = new URL(env('TWILIO_API_URL'));
  class EmulatorRequestClient extends twilio.RequestClient {
    constructor() {
      super({ keepAlive: true });
    }
    override request<T>(opts: TwilioRequestClient.RequestOptions<T>) {
      const uri = new URL(opts.uri);
      uri.protocol = base.protocol;
      uri.host = base.host;
      return super.request<T>({ ...opts, uri: uri.href });
    }
  }
  return twilio(env('TWILIO_ACCOUNT_SID'), env('TWILIO_AUTH_TOKEN'), { httpClient: new EmulatorRequestClient() });
}

/**
 * One SMS job: claim (queued → sending, with its timeline row), send through Twilio, record
 * `sent` with the SID. A message already claimed is left alone (the job was delivered twice); a
 * failed provider call gives the claim back and fails the job, for the queue to retry.
 */
export async function sendSmsJob(sql: Sql, client: ReturnType<typeof twilioClient>, id: string): Promise<void> {
  const [m] = await sql<{ to_contact: string; from_contact: string; body: string }[]>`
    WITH claimed AS (
      UPDATE messages SET status = 'sending', updated_at = now() WHERE id = ${id} AND status = 'queued'
      RETURNING id, to_contact, from_contact, body),
    tl AS (INSERT INTO status_events (message_id, status, source) SELECT id, 'sending', 'worker' FROM claimed)
    SELECT to_contact, from_contact, body FROM claimed`;
  if (!m) return;
  let sid: string;
  try {
    const sent = await client.messages.create({
      to: m.to_contact,
      from: m.from_contact,
      body: m.body,
      statusCallback: `${env('PUBLIC_URL')}/twilio/status?mid=${id}`,
    });
    sid = sent.sid;
  } catch (err) {
    // released for the queue's retry (which would otherwise find nothing to claim)
    await sql`UPDATE messages SET status = 'queued', updated_at = now() WHERE id = ${id} AND status = 'sending'`;
    throw err;
  }
  await applyStatus(sql, id, 'sent', 'worker', sid);
}
