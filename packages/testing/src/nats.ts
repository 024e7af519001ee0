/**
 * testNats(t): stream and consumer names of its own on the shared NATS (a unique
 * HATCH_NATS_PREFIX), and every stream with that prefix deleted in teardown.
 */
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { natsNames, type NatsNames } from '@hatch/contracts';
import type { Teardownable } from './db.js';

export function testNatsUrl(): string {
  return process.env.HATCH_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
}

export interface TestNats {
  url: string;
  prefix: string;
  names: NatsNames;
}

export async function deleteStreamsWithPrefix(url: string, prefix: string): Promise<string[]> {
  const nc = await connect({ servers: url, timeout: 3000 });
  try {
    const jsm = await jetstreamManager(nc);
    const deleted: string[] = [];
    for await (const name of jsm.streams.names()) {
      if (name.startsWith(`${prefix}_`)) {
        await jsm.streams.delete(name).catch(() => false);
        deleted.push(name);
      }
    }
    return deleted;
  } finally {
    await nc.close();
  }
}

export function testNats(t: Teardownable, opts: { url?: string } = {}): TestNats {
  const url = opts.url ?? testNatsUrl();
  const prefix = `T${randomBytes(5).toString('hex').toUpperCase()}`;
  t.teardown(async () => {
    await deleteStreamsWithPrefix(url, prefix).catch(() => {
      // the test's own NATS may be gone (fault tests stop it); nothing to clean then
    });
  });
  return { url, prefix, names: natsNames(prefix) };
}
