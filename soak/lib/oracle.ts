/**
 * The soak's oracle (issue 17), after the load stopped and the drain window: what PostgreSQL,
 * the emulator's records (what reached "Twilio" and "SendGrid") and the SSE clients say.
 *
 * - every SMS (every outbound row, answered or not) reached the emulator exactly once, or is
 *   `failed` with the provider's reason; none is left `queued` or `sending`; every send answered
 *   202 has its row;
 * - every email likewise; a second copy only counts as explained when an earlier attempt of the
 *   same email had an unknown outcome (the emulator answered 5xx after accepting, held the answer
 *   or dropped the connection: the documented window);
 * - every SSE client received, for its filter, every journal event after its first position,
 *   strictly increasing, no gap, no duplicate.
 */
import type postgres from 'postgres';
import { STALLED_NOTE_PREFIX } from '@hatch/db';
import type { SendRecord, SseClient } from './load.js';

export interface Finding {
  what: string;
  id: string;
  detail: string;
}

export interface OracleResult {
  sms: { total: number; sent: number; failedWithReason: number };
  emails: { total: number; sent: number; failedWithReason: number; explainedDuplicates: number };
  lost: Finding[];
  sentTwice: Finding[];
  stuck: Finding[];
  /** SMS / emails that made no progress for the gateways' stall window and got a new job (late, not lost) */
  requeuedAfterStall: number;
  sse: Array<{
    client: string;
    filter: string;
    expected: number;
    received: number;
    missing: number;
    extra: number;
    problems: string[];
    connections: number;
    stalls: number;
  }>;
  /** per SMS / email: created → first `sent` (ms), with its creation time */
  sendToSent: Array<{ at: number; ms: number }>;
}

interface EmulatorMessage {
  accepted: boolean;
  statusCallback: string | null;
}
interface EmulatorEmail {
  accepted: boolean;
  httpStatus: number | null;
  fault: { kind?: string } | null;
  request: { custom_args?: Record<string, string>; personalizations?: Array<{ custom_args?: Record<string, string> }> };
}

async function emulatorRecords(emulatorUrl: string): Promise<{ messages: EmulatorMessage[]; emails: EmulatorEmail[] }> {
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${emulatorUrl}${path}`, { signal: AbortSignal.timeout(30_000) });
    if (res.status !== 200) throw new Error(`emulator ${path}: ${res.status}`);
    return (await res.json()) as T;
  };
  const m = await get<{ messages: EmulatorMessage[]; evicted: number }>('/_emulator/messages');
  const e = await get<{ emails: EmulatorEmail[]; evicted: number }>('/_emulator/emails');
  if (m.evicted || e.evicted)
    throw new Error(`the emulator evicted records (${m.evicted} messages, ${e.evicted} emails): raise EMULATOR_MAX_RECORDS`);
  return { messages: m.messages, emails: e.emails };
}

function midOf(callback: string | null): string | undefined {
  if (!callback) return undefined;
  try {
    return new URL(callback).searchParams.get('mid') ?? undefined;
  } catch {
    return undefined;
  }
}

function emailIdOf(e: EmulatorEmail): string | undefined {
  return e.request.custom_args?.email_id ?? e.request.personalizations?.find((p) => p.custom_args?.email_id)?.custom_args?.email_id;
}

const FINAL_SMS = new Set(['sent', 'delivered', 'undelivered', 'failed']);

export async function checkOracle(
  sql: postgres.Sql,
  emulatorUrl: string,
  records: SendRecord[],
  clients: SseClient[],
): Promise<OracleResult> {
  const { messages, emails } = await emulatorRecords(emulatorUrl);
  const smsCount = new Map<string, number>();
  for (const m of messages) {
    if (!m.accepted) continue;
    const mid = midOf(m.statusCallback);
    if (mid) smsCount.set(mid, (smsCount.get(mid) ?? 0) + 1);
  }
  const emailCopies = new Map<string, EmulatorEmail[]>();
  for (const e of emails) {
    const id = emailIdOf(e);
    if (id) emailCopies.set(id, [...(emailCopies.get(id) ?? []), e]);
  }

  const lost: Finding[] = [];
  const sentTwice: Finding[] = [];
  const stuck: Finding[] = [];
  const res: OracleResult = {
    sms: { total: 0, sent: 0, failedWithReason: 0 },
    emails: { total: 0, sent: 0, failedWithReason: 0, explainedDuplicates: 0 },
    lost,
    sentTwice,
    stuck,
    requeuedAfterStall: 0,
    sse: [],
    sendToSent: [],
  };

  const smsRows = await sql<Array<{ id: string; status: string; error_code: string | null; created_at: Date; sent_at: Date | null }>>`
    SELECT m.id, m.status, m.error_code, m.created_at,
      (SELECT min(occurred_at) FROM status_events s WHERE s.message_id = m.id AND s.status = 'sent') AS sent_at
    FROM messages m WHERE m.channel = 'sms' AND m.direction = 'outbound'`;
  const smsIds = new Set<string>();
  for (const r of smsRows) {
    smsIds.add(r.id);
    res.sms.total++;
    const copies = smsCount.get(r.id) ?? 0;
    if (r.sent_at) res.sendToSent.push({ at: r.created_at.getTime(), ms: r.sent_at.getTime() - r.created_at.getTime() });
    if (!FINAL_SMS.has(r.status)) stuck.push({ what: 'sms', id: r.id, detail: `left ${r.status}` });
    else if (copies > 1) sentTwice.push({ what: 'sms', id: r.id, detail: `${copies} copies reached Twilio (status ${r.status})` });
    else if (copies === 1) res.sms.sent++;
    else if (r.status === 'failed' && r.error_code) res.sms.failedWithReason++;
    else lost.push({ what: 'sms', id: r.id, detail: `status ${r.status} but never reached Twilio` });
  }

  const emailRows = await sql<Array<{ id: string; status: string; error_code: string | null; created_at: Date; sent_at: Date | null }>>`
    SELECT e.id, e.status, e.error_code, e.created_at,
      (SELECT min(occurred_at) FROM status_events s WHERE s.email_id = e.id AND s.status = 'sent') AS sent_at
    FROM emails e`;
  const emailIds = new Set<string>();
  for (const r of emailRows) {
    emailIds.add(r.id);
    res.emails.total++;
    const copies = (emailCopies.get(r.id) ?? []).filter((e) => e.accepted);
    if (r.sent_at) res.sendToSent.push({ at: r.created_at.getTime(), ms: r.sent_at.getTime() - r.created_at.getTime() });
    if (r.status === 'queued' || r.status === 'sending') stuck.push({ what: 'email', id: r.id, detail: `left ${r.status}` });
    else if (copies.length > 1) {
      // a copy after one whose answer was lost or an error (unknown outcome) is the documented window
      const unknownBefore = copies.slice(0, -1).every((c) => c.httpStatus === null || (c.httpStatus ?? 0) >= 500 || c.fault !== null);
      if (unknownBefore) res.emails.explainedDuplicates++;
      else
        sentTwice.push({
          what: 'email',
          id: r.id,
          detail: `${copies.length} copies reached SendGrid, the earlier ones answered ${copies.map((c) => c.httpStatus).join(', ')}`,
        });
    } else if (copies.length === 1) res.emails.sent++;
    else if (r.status === 'failed' && r.error_code) res.emails.failedWithReason++;
    else lost.push({ what: 'email', id: r.id, detail: `status ${r.status} but never reached SendGrid` });
  }

  for (const rec of records) {
    if (rec.outcome !== 'accepted' || !rec.id || rec.kind === 'chat') continue;
    const known = rec.kind === 'sms' ? smsIds : emailIds;
    if (!known.has(rec.id)) lost.push({ what: rec.kind, id: rec.id, detail: 'answered 202 but no row' });
  }

  // what happened to each one left queued/sending (its timeline and any outbox row), for the report
  for (const f of stuck.slice(0, 10)) {
    const events = await sql<Array<{ at: Date; status: string; source: string; code: string | null; detail: string | null }>>`
      SELECT occurred_at AS at, status, source, provider_code AS code, detail FROM status_events
       WHERE message_id = ${f.id} OR email_id = ${f.id} ORDER BY id`;
    const [row] = await sql<Array<{ created_at: Date; updated_at: Date; claimed_at: Date | null; attempts: number }>>`
      SELECT created_at, updated_at, claimed_at, attempts FROM ${sql(f.what === 'sms' ? 'messages' : 'emails')} WHERE id = ${f.id}`;
    const outbox = await sql<
      Array<{ dedupe_id: string; available_at: Date }>
    >`SELECT dedupe_id, available_at FROM outbox WHERE entity_id = ${f.id}`;
    const timeline = events.map(
      (e) => `${e.at.toISOString()} ${e.status} (${e.source}${e.code ? ` ${e.code}` : ''}${e.detail ? `: ${e.detail}` : ''})`,
    );
    f.detail +=
      `; created ${row?.created_at.toISOString()}, updated ${row?.updated_at.toISOString()}, claimed ${row?.claimed_at?.toISOString() ?? 'no'}, ` +
      `attempts ${row?.attempts}; outbox rows: ${outbox.map((o) => `${o.dedupe_id} due ${o.available_at.toISOString()}`).join(', ') || 'none'}; ` +
      `timeline: ${timeline.join(' → ') || 'empty'}`;
  }
  const [requeued] = await sql<Array<{ n: number }>>`
    SELECT count(*)::int AS n FROM status_events WHERE source = 'outbox' AND detail LIKE ${`${STALLED_NOTE_PREFIX}%`}`;
  res.requeuedAfterStall = requeued?.n ?? 0;

  const journal = await sql<Array<{ id: string; table_name: string; conversation_id: string | null }>>`
    SELECT id::text, table_name, conversation_id::text FROM change_journal ORDER BY id`;
  for (const c of clients) {
    const start = c.startId ?? -1n;
    const expected = journal
      .filter((j) => BigInt(j.id) > start && (!c.conversationId || (j.table_name === 'messages' && j.conversation_id === c.conversationId)))
      .map((j) => j.id);
    const received = c.events.map((e) => String(e.id));
    const got = new Set(received);
    const want = new Set(expected);
    const missing = expected.filter((id) => !got.has(id));
    const extra = received.filter((id) => !want.has(id));
    const problems = [...c.problems];
    if (c.startId === undefined) problems.push('never connected');
    if (missing.length) problems.push(`missing ${missing.length} events, first ${missing.slice(0, 5).join(', ')}`);
    if (extra.length) problems.push(`${extra.length} events not in the journal for its filter, first ${extra.slice(0, 5).join(', ')}`);
    res.sse.push({
      client: c.name,
      filter: c.conversationId ? `conversation ${c.conversationId.slice(0, 8)}` : 'all',
      expected: expected.length,
      received: received.length,
      missing: missing.length,
      extra: extra.length,
      problems,
      connections: c.connections,
      stalls: c.stallsDetected,
    });
  }
  return res;
}

/** True when nothing is left to drain: no SMS or email queued/sending, every SSE client caught up. */
export async function drained(sql: postgres.Sql, clients: SseClient[]): Promise<boolean> {
  const [open] = await sql<Array<{ n: number }>>`
    SELECT ((SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')) +
            (SELECT count(*) FROM emails WHERE status IN ('queued', 'sending')))::int AS n`;
  if ((open?.n ?? 1) > 0) return false;
  const [all] = await sql<Array<{ max: string | null }>>`SELECT max(id)::text AS max FROM change_journal`;
  const maxAll = BigInt(all?.max ?? '0');
  for (const c of clients) {
    const last = c.events.at(-1)?.id ?? c.startId ?? -1n;
    if (c.conversationId) {
      const [f] = await sql<
        Array<{ max: string | null }>
      >`SELECT max(id)::text AS max FROM change_journal WHERE table_name = 'messages' AND conversation_id = ${c.conversationId}`;
      if (last < BigInt(f?.max ?? '0')) return false;
    } else if (last < maxAll) return false;
  }
  return true;
}
