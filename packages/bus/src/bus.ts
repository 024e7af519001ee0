/**
 * connectBus: the NATS connection every service shares the shape of. Reconnects forever
 * (a NATS restart must not need a service restart); `close()` drains within a bound.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';
import { natsServers } from '@hatch/config';

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** copies of each stream and durable consumer (HATCH_STREAM_REPLICAS), for ensureStreams and ensureConsumer */
  replicas: number;
  /** true while the client is connected (false while reconnecting) */
  isConnected(): boolean;
  /** round trip to the server, for readiness; throws when it does not answer in time */
  ping(timeoutMs?: number): Promise<void>;
  close(timeoutMs?: number): Promise<void>;
}

export interface ConnectBusOptions {
  /** NATS_URL: one server or a comma-separated list (the nodes of a cluster; any of them will do) */
  url: string;
  /** HATCH_STREAM_REPLICAS (default 1) */
  replicas?: number;
  name: string;
  log?: Logger;
  /** ms to wait for the first connection before failing */
  timeoutMs?: number;
}

export async function connectBus(opts: ConnectBusOptions): Promise<Bus> {
  const log = opts.log?.child({ component: 'bus' });
  const nc = await connect({
    servers: natsServers(opts.url),
    name: opts.name,
    timeout: opts.timeoutMs ?? 5000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
    // nats.js otherwise builds two Error objects (stack traces) per request or JetStream publish
    // in case it times out: ~40 % of the realtime-bridge's CPU per relayed event. Our logs carry
    // the error message and the component, not the async stack.
    noAsyncTraces: true,
  });
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        connected = false;
        log?.warn({ server: (s as { server?: string }).server }, 'nats disconnected');
      } else if (s.type === 'reconnect') {
        connected = true;
        log?.info('nats reconnected');
      } else if (s.type === 'error') {
        log?.warn({ err: (s as { error?: unknown }).error }, 'nats error');
      }
    }
  })().catch(() => {});
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc, { timeout: opts.timeoutMs ?? 5000 });
  let closing: Promise<void> | undefined;
  return {
    nc,
    js,
    jsm,
    replicas: opts.replicas ?? 1,
    isConnected: () => connected && !nc.isClosed(),
    async ping(timeoutMs = 1000) {
      if (nc.isClosed() || !connected) throw new Error('nats: not connected');
      await withTimeout(nc.rtt(), timeoutMs, 'nats: no answer to ping');
    },
    close(timeoutMs = 5000) {
      closing ??= (async () => {
        if (nc.isClosed()) return;
        try {
          await withTimeout(nc.drain(), timeoutMs, 'nats drain timed out');
        } catch (err) {
          log?.warn({ err }, 'nats drain did not finish; closing');
          await nc.close();
        }
      })();
      return closing;
    },
  };
}
