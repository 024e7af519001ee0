/**
 * The soak's faults (issue 17), one at a time, each logged with its start and end:
 *
 *   kill-service        kill -9 of a random replica of a service, started again 2–5 s later
 *   kill-nats           kill -9 of a NATS node, started again 3–8 s later
 *   stall-nats          SIGSTOP of a NATS node for 10–20 s, then SIGCONT
 *   stall-gateway       SIGSTOP of a gateway for 10–20 s, then SIGCONT
 *   pg-restart          PostgreSQL stopped `immediate` (a crash) and started 2–5 s later; once a run
 *   kill-active-bridge  kill -9 of the bridge that holds the lock (the standby takes over), restarted
 *   rolling-restart     SIGTERM of every service replica in turn, each started again and ready
 *                       before the next (a Kubernetes rollout)
 *
 * The emulator is never killed: it holds the oracle's record of what reached the providers.
 */
import type { Rng } from './random.js';
import type { Replica, Stack } from './stack.js';

export const FAULT_KINDS = [
  'kill-service',
  'kill-nats',
  'stall-nats',
  'stall-gateway',
  'pg-restart',
  'kill-active-bridge',
  'rolling-restart',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultRecord {
  kind: FaultKind;
  target: string;
  startedAt: number;
  /** the fault is over (restarted, continued) */
  endedAt?: number;
  /** a probe SMS sent after the fault reached `sent` */
  recoveredAt?: number;
  error?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * How long the active bridge may take to show itself: after a fault that took the database away
 * (pg-restart) the bridges retry its lock with a backoff that doubles up to 30 s (realtime-bridge
 * MAX_LOCK_BACKOFF_MS), so right after the previous fault none may hold it yet (seen in a CI run:
 * asked 1.7 s after PostgreSQL came back). No active bridge within this is a failure.
 */
const ACTIVE_BRIDGE_WAIT_MS = 45_000;

async function activeBridge(stack: Stack): Promise<Replica | undefined> {
  const deadline = Date.now() + ACTIVE_BRIDGE_WAIT_MS;
  for (;;) {
    for (const r of stack.of('realtime-bridge')) {
      const body = await r.readiness();
      if (body?.role === 'active') return r;
    }
    if (Date.now() >= deadline) return undefined;
    await sleep(250);
  }
}

/** Runs one fault to its end (the target running again). */
export async function injectFault(kind: FaultKind, stack: Stack, rnd: Rng, log: (msg: string) => void): Promise<FaultRecord> {
  const rec: FaultRecord = { kind, target: '', startedAt: Date.now() };
  const services = stack.replicas.filter((r) => r.service !== 'provider-emulator');
  try {
    switch (kind) {
      case 'kill-service': {
        const r = rnd.pick(services);
        rec.target = r.name;
        log(`fault ${kind}: kill -9 ${r.name} (pid ${r.pid})`);
        await r.kill9();
        await sleep(rnd.int(2000, 5000));
        await r.start();
        break;
      }
      case 'kill-nats': {
        const i = rnd.int(0, stack.nats.nodes.length - 1);
        const node = stack.nats.nodes[i];
        if (!node) throw new Error('no NATS node');
        rec.target = `nats-${i + 1}`;
        log(`fault ${kind}: kill -9 ${rec.target} (pid ${node.pid})`);
        await node.kill();
        await sleep(rnd.int(3000, 8000));
        await node.start();
        await stack.nats.waitReady(60_000);
        break;
      }
      case 'stall-nats': {
        const i = rnd.int(0, stack.nats.nodes.length - 1);
        const node = stack.nats.nodes[i];
        if (!node?.pid) throw new Error('no running NATS node');
        rec.target = `nats-${i + 1}`;
        const ms = rnd.int(10_000, 20_000);
        log(`fault ${kind}: SIGSTOP ${rec.target} for ${ms} ms`);
        process.kill(node.pid, 'SIGSTOP');
        try {
          await sleep(ms);
        } finally {
          if (node.pid) process.kill(node.pid, 'SIGCONT');
        }
        break;
      }
      case 'stall-gateway': {
        const r = rnd.pick(stack.gateways.filter((g) => g.running));
        rec.target = r.name;
        const ms = rnd.int(10_000, 20_000);
        log(`fault ${kind}: SIGSTOP ${r.name} for ${ms} ms`);
        r.signal('SIGSTOP');
        try {
          await sleep(ms);
        } finally {
          r.signal('SIGCONT');
        }
        break;
      }
      case 'pg-restart': {
        rec.target = 'postgresql';
        log(`fault ${kind}: pg_ctl stop -m immediate`);
        await stack.pg.stop('immediate');
        await sleep(rnd.int(2000, 5000));
        await stack.pg.start();
        break;
      }
      case 'kill-active-bridge': {
        const r = await activeBridge(stack);
        if (!r) throw new Error(`no bridge reports itself active within ${ACTIVE_BRIDGE_WAIT_MS / 1000} s`);
        rec.target = r.name;
        log(`fault ${kind}: kill -9 ${r.name} (active)`);
        await r.kill9();
        await sleep(rnd.int(2000, 5000));
        await r.start();
        break;
      }
      case 'rolling-restart': {
        rec.target = 'every service replica';
        log(`fault ${kind}: SIGTERM each replica in turn`);
        for (const r of services) {
          await r.terminate();
          await r.start();
        }
        break;
      }
    }
  } catch (err) {
    rec.error = (err as Error).message.slice(0, 500);
    log(`fault ${kind} failed: ${rec.error}`);
  }
  rec.endedAt = Date.now();
  log(`fault ${kind} on ${rec.target} over after ${((rec.endedAt - rec.startedAt) / 1000).toFixed(1)} s`);
  return rec;
}

/**
 * The order of the faults: a shuffled bag of every kind, refilled when empty (without
 * pg-restart after the first bag: once a run), so a run of 7 faults has every kind.
 */
export function faultBag(rnd: Rng): () => FaultKind {
  let bag: FaultKind[] = [];
  let first = true;
  return () => {
    if (bag.length === 0) {
      bag = FAULT_KINDS.filter((k) => first || k !== 'pg-restart');
      first = false;
      for (let i = bag.length - 1; i > 0; i--) {
        const j = rnd.int(0, i);
        [bag[i], bag[j]] = [bag[j] as FaultKind, bag[i] as FaultKind];
      }
    }
    return bag.pop() as FaultKind;
  };
}
