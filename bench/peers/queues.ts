/**
 * The two job queues P2's peers are built on, each set up as its documentation recommends:
 *
 * - BullMQ on Redis: a `Queue` to add jobs, a `Worker` with `concurrency` 16 (Hatch's
 *   SMS_CONCURRENCY), ioredis connections with `maxRetriesPerRequest: null` (required for
 *   workers), finished jobs removed (`removeOnComplete`) so Redis does not grow without bound.
 * - pg-boss (10.x: 11 and later need Node 22) on the same PostgreSQL, in the flow's database: the
 *   queue created once (`createQueue`), jobs sent with `send`, and `work` with the shortest
 *   polling interval it allows (0.5 s) and jobs fetched in batches: a worker fetches a batch, runs
 *   it, and polls again at once only if the batch took longer than the interval, so batches and
 *   several `work` registrations are how its docs reach throughput; each batch runs 16 at a time.
 *
 * Env: PEER_QUEUE (bullmq | pg-boss), REDIS_URL, PEER_QUEUE_PREFIX (BullMQ key prefix), DATABASE_URL.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import PgBoss from 'pg-boss';
import { env } from './sms-flow.js';

const NAME = 'sms';
const CONCURRENCY = 16;

export interface Producer {
  send(messageId: string): Promise<void>;
  close(): Promise<void>;
}

export interface Consumer {
  close(): Promise<void>;
}

type Handler = (messageId: string) => Promise<void>;

function redis(): Redis {
  return new Redis(env('REDIS_URL'), { maxRetriesPerRequest: null });
}

async function bullmqProducer(): Promise<Producer> {
  const connection = redis();
  const queue = new Queue(NAME, { connection, prefix: env('PEER_QUEUE_PREFIX') });
  return {
    async send(messageId) {
      await queue.add(
        'send',
        { messageId },
        { removeOnComplete: true, removeOnFail: 1000, attempts: 5, backoff: { type: 'exponential', delay: 1000 } },
      );
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

async function bullmqConsumer(handle: Handler): Promise<Consumer> {
  const connection = redis();
  const worker = new Worker<{ messageId: string }>(NAME, async (job) => handle(job.data.messageId), {
    connection,
    prefix: env('PEER_QUEUE_PREFIX'),
    concurrency: CONCURRENCY,
  });
  worker.on('failed', (job, err) => process.stderr.write(`job ${job?.id} failed: ${err.message}\n`));
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      connection.disconnect();
    },
  };
}

function boss(): PgBoss {
  const b = new PgBoss({ connectionString: env('DATABASE_URL'), max: 10 });
  b.on('error', (err) => process.stderr.write(`pg-boss: ${err.message}\n`));
  return b;
}

async function pgBossProducer(): Promise<Producer> {
  const b = boss();
  await b.start();
  await b.createQueue(NAME);
  return {
    async send(messageId) {
      await b.send(NAME, { messageId }, { retryLimit: 5, retryBackoff: true });
    },
    async close() {
      await b.stop({ graceful: false, wait: true });
    },
  };
}

/** Four `work` registrations, batches of 64, 16 jobs of a batch at a time. */
async function pgBossConsumer(handle: Handler): Promise<Consumer> {
  const b = boss();
  await b.start();
  await b.createQueue(NAME);
  for (let i = 0; i < 4; i++) {
    await b.work<{ messageId: string }>(NAME, { batchSize: 64, pollingIntervalSeconds: 0.5 }, async (jobs) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, async () => {
          while (next < jobs.length) await handle((jobs[next++] as PgBoss.Job<{ messageId: string }>).data.messageId);
        }),
      );
    });
  }
  return {
    async close() {
      await b.stop({ graceful: true, wait: true, timeout: 5000 });
    },
  };
}

export function producer(): Promise<Producer> {
  return env('PEER_QUEUE') === 'bullmq' ? bullmqProducer() : pgBossProducer();
}

export function consumer(handle: Handler): Promise<Consumer> {
  return env('PEER_QUEUE') === 'bullmq' ? bullmqConsumer(handle) : pgBossConsumer(handle);
}
