/**
 * What the realtime test files share: gateway replicas built in-process and listening on real
 * ports, journal writes through @hatch/db, and readers of what an SSE client received.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '@hatch/log';
import { connectBus, ensureStreams } from '@hatch/bus';
import { natsNames } from '@hatch/contracts';
import { createMetricsRegistry } from '@hatch/service';
import type { TestDb, Teardownable } from '@hatch/testing';
import type { Db } from '@hatch/db';
import { build } from '../src/app.js';
import { parseGatewayConfig } from '../src/config.js';
import { TEST_TOKEN } from './helpers.js';
import type { SseClient } from './sse-client.js';

export const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };
export const log = createLogger({ service: 'gateway', level: 'silent', pretty: false });

export interface Replica {
  app: FastifyInstance;
  url: string;
}

export async function replica(
  t: Teardownable,
  db: TestDb,
  natsUrl: string,
  prefix: string,
  env: Record<string, string> = {},
): Promise<Replica> {
  const config = parseGatewayConfig({
    DATABASE_URL: db.url,
    NATS_URL: natsUrl,
    HATCH_API_TOKEN: TEST_TOKEN,
    HATCH_NATS_PREFIX: prefix,
    LOG_LEVEL: 'silent',
    HATCH_SSE_HEARTBEAT_MS: '300',
    HATCH_SSE_RETRY_MS: '500',
    ...env,
  });
  const bus = await connectBus({ url: natsUrl, name: 'gateway-sse-test', log });
  await ensureStreams(bus.jsm, natsNames(prefix));
  const app = await build({ config, log, db, bus, registry: createMetricsRegistry('gateway') });
  let closed = false;
  app.addHook('onClose', async () => {
    closed = true;
  });
  t.teardown(async () => {
    if (!closed) await app.close();
    await bus.close(1000);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

export async function conversation(db: Db): Promise<string> {
  const id = randomUUID();
  await db.db
    .insertInto('conversations')
    .values({ id, participants: [`a-${id}`, `b-${id}`], channel: 'chat' })
    .execute();
  return id;
}

export async function write(db: Db, conv: string, n: number, per = 10): Promise<void> {
  for (let done = 0; done < n; done += per) {
    const rows = Array.from({ length: Math.min(per, n - done) }, (_, i) => ({
      id: randomUUID(),
      conversation_id: conv,
      from_contact: 'me',
      to_contact: 'you',
      body: `m${done + i}`,
      channel: 'chat' as const,
      direction: 'outbound' as const,
      status: 'stored' as const,
    }));
    await db.db.insertInto('messages').values(rows).execute();
  }
}

export const maxId = async (db: Db) =>
  Number(
    (
      await db.db
        .selectFrom('change_journal')
        .select((eb) => eb.fn.max('id').as('m'))
        .executeTakeFirst()
    )?.m ?? 0,
  );

export const updates = (c: SseClient) => c.events.filter((e) => e.event === 'message_update' || e.event === 'email_update');
export const ids = (c: SseClient) => updates(c).map((e) => Number(e.id));
export async function journal(db: Db): Promise<number[]> {
  return (await db.db.selectFrom('change_journal').select('id').orderBy('id').execute()).map((r) => Number(r.id));
}

/** One metric of a gateway's /metrics (its first series), NaN when absent. */
export async function metricOf(app: FastifyInstance, name: string): Promise<number> {
  const body = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(body)?.[1] ?? NaN);
}
