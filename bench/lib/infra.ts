/**
 * The bench's own PostgreSQL database (created and migrated with the project's migrator, dropped
 * after) and NATS prefix (every `<PREFIX>_*` stream deleted after), the raw-limit tables, and
 * pgbench runs against them.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { jetstreamManager } from '@nats-io/jetstream';
import { ROOT } from './procs.js';

export const ADMIN_URL = process.env.HATCH_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const NATS_URL = process.env.HATCH_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
/** Redis for P2's BullMQ peer */
export const REDIS_URL = process.env.HATCH_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * application_name of the bench's own connections (set-up, counting, clean-up): their backends
 * are the load generator's, never counted as the system's PostgreSQL CPU (run.ts).
 */
export const BENCH_APP = 'hatch-bench';

/** A client of the bench's own (application_name BENCH_APP). */
export function benchSql(url: string, max = 1): postgres.Sql {
  return postgres(url, { max, onnotice: () => {}, connection: { application_name: BENCH_APP } });
}

/**
 * Statistics of the tables the warm-up filled, as autovacuum's analyze would take them on a
 * default server (this machine's PostgreSQL runs with autovacuum off: the machine facts say so);
 * without them a pooled connection keeps plans made on empty tables (a claim read every queued
 * row). Run by the bench's own connection: not counted.
 */
export async function analyzeAfterWarmUp(sql: postgres.Sql): Promise<void> {
  await sql`ANALYZE`;
}

export function urlFor(name: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface BenchDb {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** One statement on the admin connection (CREATE / DROP DATABASE). */
async function admin(statement: string): Promise<void> {
  const sql = benchSql(ADMIN_URL);
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A fresh database migrated by packages/db's migrator (as `pnpm migrate` does). */
export async function createBenchDb(): Promise<BenchDb> {
  const name = `hatch_bench_${randomBytes(4).toString('hex')}`;
  const url = urlFor(name);
  const drop = () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  const res = spawnSync(process.execPath, ['--conditions=@hatch/source', '--import', 'tsx', 'packages/db/src/migrate-cli.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: url },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (res.status !== 0) {
    await drop().catch(() => undefined);
    throw new Error(`migrate failed: ${res.stderr || res.stdout}`);
  }
  return { name, url, drop };
}

/** An empty database (the peers' flows of P2 each get one), dropped by `drop()`. */
export async function createPlainDb(name: string): Promise<BenchDb> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  await admin(`CREATE DATABASE "${name}"`);
  return { name, url: urlFor(name), drop: () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}

/** Drops every database whose name starts with `prefix` (clean-up backstop for the peers' databases). */
export async function dropDatabasesLike(prefix: string): Promise<void> {
  const sql = benchSql(ADMIN_URL);
  try {
    const rows = await sql<{ datname: string }[]>`SELECT datname FROM pg_database WHERE starts_with(datname, ${prefix})`;
    for (const r of rows) await sql.unsafe(`DROP DATABASE IF EXISTS "${r.datname.replace(/"/g, '""')}" WITH (FORCE)`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The table of P3's per-row NOTIFY baselines (bench/README.md): a messages-shaped table with a per-row pg_notify trigger. */
export async function createRawTables(url: string): Promise<void> {
  const sql = benchSql(url);
  try {
    await sql.unsafe(`
      CREATE TABLE bench_raw_notify (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), conversation_id uuid NOT NULL,
        to_contact text NOT NULL, from_contact text NOT NULL, body text NOT NULL, status text NOT NULL,
        direction text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX ON bench_raw_notify (conversation_id, created_at);
      CREATE FUNCTION bench_raw_notify_fn() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('bench_raw_changes', json_build_object('id', NEW.id, 'conversation_id', NEW.conversation_id,
          'status', NEW.status, 'direction', NEW.direction, 'created_at', NEW.created_at)::text);
        RETURN NEW;
      END $$;
      CREATE TRIGGER bench_raw_notify_trg AFTER INSERT ON bench_raw_notify FOR EACH ROW EXECUTE FUNCTION bench_raw_notify_fn();
    `);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export function pgbenchAvailable(): boolean {
  return spawnSync('pgbench', ['--version'], { encoding: 'utf8' }).status === 0;
}

/**
 * `group` accepted sends written as ONE statement, as pgbench sends it: the rows
 * `acceptMessages` (packages/db/src/queries/accept-message.ts) writes for them, with no Node and
 * no JSON input to unpack. Half chat, half SMS like P1's requests (which kind comes first is
 * random per transaction). Per send: the conversation upsert (message count, last message; in
 * conversation-id order, as Hatch locks them), the message with its journal trigger (journal row,
 * one NOTIFY per transaction), the first timeline row; per SMS the outbox row; once per statement
 * with any SMS the daily SMS counter upsert (sql/0004_sms_daily_counts.sql, the shape of
 * takeSmsQuotaSql without a limit). Ids are time-ordered like UUIDv7 (`newRecordId`).
 * `group` 1 is one send per commit (what the gateway would do without its group commit).
 * Recipients: 10k per kind, consecutive within a statement, so no conversation repeats in one.
 */
export function sendScript(group: number): string {
  if (!Number.isInteger(group) || group < 1 || group > 5000) throw new Error(`group must be 1..5000, not ${group}`);
  return [
    '\\set c random(0, 9999)',
    '\\set k random(0, 1)',
    'WITH ids AS (SELECT g, ((:k + g) % 2 = 0) AS sms, ' +
      "(lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 19))::uuid AS mid, " +
      "lpad(((:c + g) % 10000)::text, 12, '0') AS n " +
      `FROM generate_series(1, ${group}) AS g), ` +
      "sends AS (SELECT g, sms, mid, (CASE WHEN sms THEN '00000000-0000-4000-9000-' ELSE '00000000-0000-4000-8000-' END || n)::uuid AS cid, " +
      "CASE WHEN sms THEN '+1555' || right(n, 7) ELSE 'bench-contact-' || n END AS rcpt, " +
      "CASE WHEN sms THEN '+15005550006' ELSE 'bench' END AS sender FROM ids), " +
      'conv AS (INSERT INTO conversations (id, participants, channel, last_message_id, last_message_at, message_count, created_at, updated_at) ' +
      "SELECT cid, ARRAY[sender, rcpt], (CASE WHEN sms THEN 'sms' ELSE 'chat' END)::conversation_channel, mid, now(), 1, now(), now() FROM sends ORDER BY cid " +
      'ON CONFLICT (id) DO UPDATE SET last_message_id = CASE WHEN excluded.last_message_at >= conversations.last_message_at ' +
      'THEN excluded.last_message_id ELSE conversations.last_message_id END, ' +
      'last_message_at = greatest(conversations.last_message_at, excluded.last_message_at), ' +
      'message_count = conversations.message_count + excluded.message_count, updated_at = excluded.updated_at RETURNING 1), ' +
      'msg AS (INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status, segments, created_at, updated_at) ' +
      "SELECT mid, cid, sender, rcpt, 'bench send ' || g, (CASE WHEN sms THEN 'sms' ELSE 'chat' END)::message_channel, 'outbound', " +
      "(CASE WHEN sms THEN 'queued' ELSE 'stored' END)::message_status, CASE WHEN sms THEN 1 END, now(), now() FROM sends ORDER BY g RETURNING 1), " +
      "tl AS (INSERT INTO status_events (message_id, status, source) SELECT mid, CASE WHEN sms THEN 'queued' ELSE 'stored' END, 'api' FROM sends ORDER BY g RETURNING 1), " +
      "job AS (INSERT INTO outbox (kind, entity_id, dedupe_id) SELECT 'sms', mid, mid::text FROM sends WHERE sms ORDER BY g RETURNING 1), " +
      'quota AS (INSERT INTO sms_daily_counts AS q (day, sent, last_taken) ' +
      "SELECT (now() AT TIME ZONE 'UTC')::date, w.k, w.k FROM (SELECT count(*)::int FROM sends WHERE sms) AS w(k) WHERE w.k > 0 " +
      'ON CONFLICT (day) DO UPDATE SET sent = q.sent + excluded.last_taken, last_taken = excluded.last_taken RETURNING 1) ' +
      'SELECT (SELECT count(*) FROM conv) + (SELECT count(*) FROM msg) + (SELECT count(*) FROM tl) + (SELECT count(*) FROM job) + (SELECT count(*) FROM quota);',
    '',
  ].join('\n');
}

/**
 * `rows` rows per transaction into the raw table with the per-row pg_notify trigger (P3's
 * baselines: the same rows per transaction as Hatch's writers, and one row per transaction).
 */
export function notifyRowsScript(rows: number): string {
  if (!Number.isInteger(rows) || rows < 1 || rows > 10_000) throw new Error(`rows must be 1..10000, not ${rows}`);
  return (
    '\\set c random(1, 10000)\n' +
    'INSERT INTO bench_raw_notify (conversation_id, to_contact, from_contact, body, status, direction) ' +
    "SELECT ('00000000-0000-4000-8000-' || lpad(:c::text, 12, '0'))::uuid, '+15550001111', '+15005550006', " +
    `'Hello from the benchmark: a body of about a hundred characters, like a typical short text message.', 'queued', 'outbound' FROM generate_series(1, ${rows});\n`
  );
}

/** pgbench -n -M <mode> -j 2 with a custom script; returns tps. */
export async function pgbenchScript(
  url: string,
  scriptText: string,
  clients: number,
  seconds: number,
  mode: 'prepared' | 'simple' = 'prepared',
): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-bench-'));
  const script = path.join(dir, 'script.sql');
  fs.writeFileSync(script, scriptText);
  const u = new URL(url);
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        'pgbench',
        [
          '-n',
          '-M',
          mode,
          '-c',
          String(clients),
          '-j',
          String(Math.min(2, clients)),
          '-T',
          String(seconds),
          '-f',
          script,
          '-h',
          u.hostname,
          '-p',
          u.port || '5432',
          '-U',
          decodeURIComponent(u.username) || 'postgres',
          u.pathname.slice(1),
        ],
        { timeout: (seconds + 30) * 1000, maxBuffer: 1 << 20 },
        (err, stdout, stderr) => (err ? reject(new Error(`pgbench: ${err.message}\n${stderr}`)) : resolve(stdout)),
      );
    });
    const m = /tps = ([0-9.]+)/.exec(out);
    if (!m) throw new Error(`pgbench: no tps in output\n${out}`);
    return Number(m[1]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Deletes every Redis key starting with `prefix` (the BullMQ peer's queue). */
export async function deleteRedisKeys(prefix: string): Promise<number> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  await r.connect();
  let n = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return n;
}

export async function deleteStreams(prefix: string): Promise<string[]> {
  const nc = await connect({ servers: NATS_URL, timeout: 3000 });
  try {
    const jsm = await jetstreamManager(nc);
    const deleted: string[] = [];
    for await (const name of jsm.streams.names()) {
      // `<prefix>_*` (the stack), `<prefix>S_*` (P7's services), `<prefix>R<n>_RAW` (P2's raw limit)
      if (name.startsWith(prefix)) {
        await jsm.streams.delete(name).catch(() => false);
        deleted.push(name);
      }
    }
    return deleted;
  } finally {
    await nc.close();
  }
}

export async function purgeStream(name: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL, timeout: 3000 });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(name).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

export async function versions(): Promise<{ postgres: string; nats: string; synchronousCommit: string; autovacuum: string }> {
  const sql = benchSql(ADMIN_URL);
  let pg: string;
  let sc: string;
  let av: string;
  try {
    pg = (await sql`SHOW server_version`)[0]?.server_version as string;
    sc = (await sql`SHOW synchronous_commit`)[0]?.synchronous_commit as string;
    av = (await sql`SHOW autovacuum`)[0]?.autovacuum as string;
  } finally {
    await sql.end({ timeout: 5 });
  }
  const nc = await connect({ servers: NATS_URL, timeout: 3000 });
  const nats = nc.info?.version ?? '?';
  await nc.close();
  return { postgres: pg, nats, synchronousCommit: sc, autovacuum: av };
}
