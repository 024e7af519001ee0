/**
 * The change events P4's comparison servers broadcast (bare-sse.ts, bench/peers/sse-*.ts): core
 * NATS subscriptions on `<p>.events.messages` (single events, a bridge older than batches) and
 * on the batch subject next to it (`<p>.events.batch`, BusChangeBatch: the chat events of each
 * batch, unpacked), which see every chat event the bridge publishes into the events stream,
 * decoded to the journal id, the event's type and the event itself: what the gateway writes as
 * one SSE frame (`id:`, `event:`, `data:` the event as JSON).
 *
 * Env: NATS_URL, BENCH_SUBJECT and BENCH_BATCH_SUBJECT (or given). The bench process itself counts the same feed in P4 and
 * P6 (what reached the servers).
 */
import type http from 'node:http';
import { connect, type NatsConnection } from '@nats-io/transport-node';

export interface FeedEvent {
  id: string;
  type: string;
  event: unknown;
}

export async function subscribeEvents(
  name: string,
  onEvent: (e: FeedEvent) => void,
  opts: { servers?: string; subject?: string; batchSubject?: string } = {},
): Promise<NatsConnection> {
  const nc = await connect({ servers: opts.servers ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name });
  void (async () => {
    for await (const s of nc.status()) process.stderr.write(`nats ${s.type}${'data' in s ? ` ${JSON.stringify(s.data)}` : ''}\n`);
  })();
  const decoder = new TextDecoder();
  nc.subscribe(opts.batchSubject ?? process.env.BENCH_BATCH_SUBJECT ?? 'hatch.events.batch', {
    callback: (_err, msg) => {
      let batch: { events: Array<{ id: string; event: { type: string } }> };
      try {
        batch = JSON.parse(decoder.decode(msg.data)) as typeof batch;
      } catch {
        return; // not a batch
      }
      // the feed is the messages table's events, as on `<p>.events.messages`
      for (const e of batch.events) if (e.event.type === 'message_update') onEvent({ id: e.id, type: e.event.type, event: e.event });
    },
  });
  nc.subscribe(opts.subject ?? process.env.BENCH_SUBJECT ?? 'hatch.events.messages', {
    callback: (_err, msg) => {
      let env: { id: string; event: { type: string } };
      try {
        env = JSON.parse(decoder.decode(msg.data)) as typeof env;
      } catch {
        return; // not an event
      }
      onEvent({ id: env.id, type: env.event.type, event: env.event });
    },
  });
  return nc;
}

/** Prints the ready line the bench waits for, and closes NATS then exits on SIGTERM (after `stop`). */
export function readyAndStopOnTerm(nc: NatsConnection, stop: () => void): void {
  process.stdout.write(`${JSON.stringify({ bench: { type: 'ready' } })}\n`);
  process.on('SIGTERM', () => {
    stop();
    void nc.close().finally(() => process.exit(0));
  });
}

/**
 * node:http: answers a request for `/api/events` with an SSE response head and a `retry:` line
 * and returns true; anything else gets a 404 and false. (The bare server and the P3 relay.)
 */
export function openSse(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  if (!req.url?.startsWith('/api/events')) {
    res.writeHead(404).end();
    return false;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write('retry: 3000\n\n');
  return true;
}
