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
import { jetstreamManager } from '@nats-io/jetstream';
import { ROOT } from './procs.js';

export const ADMIN_URL = process.env.HATCH_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const NATS_URL = process.env.HATCH_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';

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

/** A fresh database migrated by packages/db's migrator (as `pnpm migrate` does). */
export async function createBenchDb(): Promise<BenchDb> {
  const name = `hatch_bench_${randomBytes(4).toString('hex')}`;
  const url = urlFor(name);
  const drop = async () => {
    const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await sql.end({ timeout: 5 });
    }
  };
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

/** The raw-limit tables of P1 and P3 (bench/README.md): one plain, one with a per-row pg_notify trigger. */
export async function createRawTables(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`
      CREATE TABLE bench_raw_plain (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), conversation_id uuid NOT NULL,
        to_contact text NOT NULL, from_contact text NOT NULL, body text NOT NULL, status text NOT NULL,
        direction text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX ON bench_raw_plain (conversation_id, created_at);
      CREATE TABLE bench_raw_notify (LIKE bench_raw_plain INCLUDING ALL);
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
 * pgbench-style single-row INSERT tps into `table` at `clients` concurrency for `seconds`
 * (pgbench -n -M prepared -j 2; synchronous_commit as the server has it).
 */
const INSERT_SCRIPT = (table: string) =>
  `\\set c random(1, 10000)\nINSERT INTO ${table} (conversation_id, to_contact, from_contact, body, status, direction) VALUES ` +
  `(('00000000-0000-4000-8000-' || lpad(:c::text, 12, '0'))::uuid, '+15550001111', '+15005550006', ` +
  `'Hello from the benchmark: a body of about a hundred characters, like a typical short text message.', 'queued', 'outbound');\n`;

/**
 * One accepted SMS send written ALONE, as pgbench sends it: the shape of `acceptMessages`
 * (packages/db/src/queries/accept-message.ts) for a batch of one (conversation upsert, message
 * with its journal trigger + NOTIFY, timeline row, outbox row, one statement, one commit), with
 * a UUIDv7-like time-ordered id, no Node. What the database does per send WITHOUT the gateway's
 * group commit: Hatch above it means the grouping pays; below it, the gateway process costs.
 */
export const SEND_TX_SCRIPT = [
  '\\set c random(1, 10000)',
  "WITH ids AS (SELECT (lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 19))::uuid AS mid, " +
    "('00000000-0000-4000-8000-' || lpad(:c::text, 12, '0'))::uuid AS cid, '+1555' || lpad(:c::text, 7, '0') AS rcpt), " +
    'conv AS (INSERT INTO conversations (id, participants, channel, last_message_id, last_message_at, message_count) ' +
    "SELECT cid, ARRAY['+15005550006', rcpt], 'sms', mid, now(), 1 FROM ids " +
    'ON CONFLICT (id) DO UPDATE SET last_message_id = excluded.last_message_id, last_message_at = greatest(conversations.last_message_at, excluded.last_message_at), ' +
    'message_count = conversations.message_count + excluded.message_count, updated_at = excluded.updated_at RETURNING 1), ' +
    "msg AS (INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status, segments) SELECT mid, cid, '+15005550006', rcpt, 'bench sms', 'sms', 'outbound', 'queued', 1 FROM ids RETURNING 1), " +
    "tl AS (INSERT INTO status_events (message_id, status, source) SELECT mid, 'queued', 'api' FROM ids RETURNING 1) " +
    "INSERT INTO outbox (kind, entity_id, dedupe_id) SELECT 'sms', mid, mid::text FROM ids;",
  '',
].join('\n');

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

/**
 * pgbench-style single-row INSERT tps into `table` at `clients` concurrency for `seconds`
 * (pgbench -n -M prepared -j 2; synchronous_commit as the server has it).
 */
export function pgbenchInsert(url: string, table: string, clients: number, seconds: number): Promise<number> {
  return pgbenchScript(url, INSERT_SCRIPT(table), clients, seconds);
}

/** Fallback when pgbench is not installed: the same insert from `clients` postgres.js connections. */
export async function ownInsertTps(url: string, table: string, clients: number, seconds: number): Promise<number> {
  const sql = postgres(url, { max: clients, onnotice: () => {}, prepare: true });
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          await sql.unsafe(
            `INSERT INTO ${table} (conversation_id, to_contact, from_contact, body, status, direction) VALUES (gen_random_uuid(), '+15550001111', '+15005550006', 'Hello from the benchmark', 'queued', 'outbound')`,
          );
          n++;
        }
      }),
    );
  } finally {
    await sql.end({ timeout: 5 });
  }
  return n / ((performance.now() - t0) / 1000);
}

export async function insertTps(url: string, table: string, clients: number, seconds: number): Promise<{ tps: number; tool: string }> {
  if (pgbenchAvailable()) return { tps: await pgbenchInsert(url, table, clients, seconds), tool: 'pgbench' };
  return { tps: await ownInsertTps(url, table, clients, seconds), tool: 'postgres.js' };
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

export async function versions(): Promise<{ postgres: string; nats: string; synchronousCommit: string }> {
  const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  let pg: string;
  let sc: string;
  try {
    pg = (await sql`SHOW server_version`)[0]?.server_version as string;
    sc = (await sql`SHOW synchronous_commit`)[0]?.synchronous_commit as string;
  } finally {
    await sql.end({ timeout: 5 });
  }
  const nc = await connect({ servers: NATS_URL, timeout: 3000 });
  const nats = nc.info?.version ?? '?';
  await nc.close();
  return { postgres: pg, nats, synchronousCommit: sc };
}
