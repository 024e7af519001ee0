/** Bridge test harness: real PostgreSQL (a fresh DB per file) and real NATS (own prefix). */
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { DeliverPolicy } from '@nats-io/jetstream';
import { BusChangeBatch, BusChangeEvent, decode, unpackBatch, type NatsNames } from '@hatch/contracts';
import type { Db } from '@hatch/db';
import { createLogger } from '@hatch/log';
import { connectBus, ensureStreams, type Bus } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import type { Teardownable, TestDb, TestNats } from '@hatch/testing';
import type { Registry } from 'prom-client';
import { startBridge, type BridgeOptions, type OpenConnection, type RunningBridge } from '../src/bridge.js';
import { dedicatedConnection } from '../src/compose.js';

export const log = createLogger({ service: 'realtime-bridge-test', level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false });

export async function seedConversation(db: Db): Promise<string> {
  const id = randomUUID();
  await db.db
    .insertInto('conversations')
    .values({ id, participants: [`a-${id}`, `b-${id}`], channel: 'chat' })
    .execute();
  return id;
}

/** Inserts `n` chat messages in one transaction (one statement); returns their ids. */
export async function insertChats(db: Db, conversationId: string, n: number): Promise<string[]> {
  const rows = Array.from({ length: n }, (_, i) => ({
    id: randomUUID(),
    conversation_id: conversationId,
    from_contact: 'me',
    to_contact: 'you',
    body: `hello ${i}`,
    channel: 'chat' as const,
    direction: 'outbound' as const,
    status: 'stored' as const,
  }));
  await db.db.insertInto('messages').values(rows).execute();
  return rows.map((r) => r.id);
}

/** The environment of a bridge process (spawnService) on this test's database and NATS prefix, with short intervals. */
export function bridgeEnv(db: TestDb, nats: TestNats, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_NATS_PREFIX: nats.prefix,
    HEALTH_PORT: '0',
    LOG_LEVEL: 'info',
    HATCH_BRIDGE_LOCK_RETRY_MS: '200',
    HATCH_BRIDGE_POLL_INTERVAL_MS: '200',
    HATCH_BRIDGE_HEARTBEAT_MS: '500',
    ...extra,
  };
}

/** The service's own dedicated connections (compose.ts), each remembered so teardown ends it. */
export function connectionFactory(url: string) {
  const opened: postgres.Sql[] = [];
  const open: OpenConnection = (purpose, hooks) => {
    const sql = dedicatedConnection(url, purpose, hooks);
    opened.push(sql);
    return sql;
  };
  return { open, closeAll: () => Promise.all(opened.map((s) => s.end({ timeout: 1 }).catch(() => undefined))) };
}

export interface TestBridge {
  bridge: RunningBridge;
  registry: Registry;
  bus: Bus;
  metric(name: string): Promise<number>;
}

export async function startTestBridge(
  t: Teardownable,
  db: TestDb,
  natsUrl: string,
  names: NatsNames,
  opts: Partial<BridgeOptions> = {},
): Promise<TestBridge> {
  const bus = await connectBus({ url: natsUrl, name: 'bridge-test', log });
  await ensureStreams(bus.jsm, names);
  const registry = createMetricsRegistry('realtime-bridge');
  const conns = connectionFactory(db.url);
  const bridge = startBridge(
    { db, bus, registry, log, openConnection: conns.open },
    { natsPrefix: names.prefix, pollIntervalMs: 200, lockRetryMs: 200, heartbeatMs: 500, ...opts },
  );
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await bridge.stop();
    await conns.closeAll();
    await bus.close(1000);
  });
  return {
    bridge: {
      ...bridge,
      stop: async () => {
        stopped = true;
        await bridge.stop();
      },
    },
    registry,
    bus,
    metric: async (name) => {
      const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
      return (m?.values ?? []).reduce((a, v) => a + Number(v.value), 0);
    },
  };
}

/**
 * Every change event in the stream, in stream order (a fresh ordered consumer from the start):
 * batches unpacked, single events (an older bridge, or a test standing in for one) as they are.
 */
export async function readStream(bus: Bus, names: NatsNames): Promise<BusChangeEvent[]> {
  const info = await bus.jsm.streams.info(names.streams.events);
  const out: BusChangeEvent[] = [];
  const last = info.state.last_seq;
  if (info.state.messages === 0) return out;
  const consumer = await bus.js.consumers.get(names.streams.events, { deliver_policy: DeliverPolicy.All });
  const msgs = await consumer.consume({ max_messages: 1000 });
  for await (const m of msgs) {
    if (m.subject === names.subjects.eventBatch) out.push(...unpackBatch(decode(BusChangeBatch, m.data)));
    else if (m.subject !== names.subjects.eventFor('heartbeat')) out.push(decode(BusChangeEvent, m.data));
    if (m.seq >= last) break;
  }
  await msgs.close();
  return out;
}

/** Journal ids (as numbers) currently in the journal. */
export async function journalIds(db: Db): Promise<number[]> {
  const rows = await db.db.selectFrom('change_journal').select('id').orderBy('id').execute();
  return rows.map((r) => Number(r.id));
}

export function assertStrictlyIncreasing(ids: number[]): string | undefined {
  for (let i = 1; i < ids.length; i++) if ((ids[i] as number) <= (ids[i - 1] as number)) return `ids[${i}]=${ids[i]} after ${ids[i - 1]}`;
  return undefined;
}
