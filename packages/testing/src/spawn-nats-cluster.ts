/**
 * spawnNatsCluster: a JetStream cluster of the test's own (issue 17), `size` nats-server nodes
 * (default 3) routed to each other over loopback ports, each with its own store directory, so
 * a test or the soak can kill (-9), stop (SIGSTOP) and restart single nodes. Each node is a
 * spawnNats server, so it dies with the test process like any other (watchdog.ts). Ready when
 * every node accepts clients and the cluster has elected its JetStream meta leader (a stream can
 * be created), polled with a deadline.
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { Teardownable } from './db.js';
import { freePort } from './ports.js';
import { spawnNats, type SpawnedNats, type SpawnNatsOptions } from './spawn-nats.js';
import { waitFor } from './wait.js';

export interface SpawnedNatsCluster {
  nodes: SpawnedNats[];
  /** every node's client URL, comma-separated: a NATS_URL */
  url: string;
  /** resolves when every running node sees a JetStream meta leader */
  waitReady(timeoutMs?: number): Promise<void>;
}

export interface SpawnNatsClusterOptions extends Pick<SpawnNatsOptions, 'args' | 'startTimeoutMs'> {
  size?: number;
  /** ready deadline of the whole cluster (default 30 s) */
  readyTimeoutMs?: number;
}

/** True when the node at `url` answers a JetStream account-info request (which needs a meta leader). */
async function jetStreamAnswers(url: string): Promise<boolean> {
  const nc = await connect({ servers: url, timeout: 1000, reconnect: false }).catch(() => undefined);
  if (!nc) return false;
  try {
    const jsm = await jetstreamManager(nc, { timeout: 1000 });
    await jsm.getAccountInfo();
    return true;
  } catch {
    return false;
  } finally {
    await nc.close().catch(() => {});
  }
}

export async function spawnNatsCluster(t: Teardownable, opts: SpawnNatsClusterOptions = {}): Promise<SpawnedNatsCluster> {
  const size = opts.size ?? 3;
  const name = `hatch-${randomBytes(3).toString('hex')}`;
  const routePorts: number[] = [];
  const clientPorts: number[] = [];
  for (let i = 0; i < size; i++) {
    routePorts.push(await freePort());
    clientPorts.push(await freePort());
  }
  const nodes = await Promise.all(
    routePorts.map((routePort, i) =>
      spawnNats(t, {
        args: opts.args,
        startTimeoutMs: opts.startTimeoutMs,
        cluster: { name, routePort, clientPort: clientPorts[i] as number, peerRoutePorts: routePorts.filter((p) => p !== routePort) },
      }),
    ),
  );
  const cluster: SpawnedNatsCluster = {
    nodes,
    url: nodes.map((n) => n.url).join(','),
    async waitReady(timeoutMs = opts.readyTimeoutMs ?? 30_000) {
      await waitFor(async () => (await Promise.all(nodes.filter((n) => n.running).map((n) => jetStreamAnswers(n.url)))).every(Boolean), {
        timeoutMs,
        message: `the NATS cluster ${name} to elect a JetStream meta leader`,
      });
    },
  };
  await cluster.waitReady();
  return cluster;
}
