/**
 * JetStream streams: created (or updated to this shape) by every service at start, so no
 * deployment order matters. Names come from @hatch/contracts (natsNames).
 */
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsNames } from '@hatch/contracts';

export interface StreamLimits {
  /** most jobs waiting in the work queue; past it publishes are refused (DiscardNew), never silently dropped */
  jobsMaxMsgs?: number;
  /** dead letters kept this long */
  dlqMaxAgeMs?: number;
  /** change events kept this long (the resume window) */
  eventsMaxAgeMs?: number;
  eventsMaxMsgs?: number;
}

export function streamConfigs(names: NatsNames, limits: StreamLimits = {}): Array<Partial<StreamConfig> & { name: string }> {
  return [
    {
      name: names.streams.jobs,
      subjects: [names.subjects.jobs],
      // Work queue: a job is removed once acked. DiscardNew: with a limit and the default
      // DiscardOld, unconsumed jobs would be deleted silently (reliability.md §1.4).
      retention: RetentionPolicy.Workqueue,
      discard: DiscardPolicy.New,
      max_msgs: limits.jobsMaxMsgs ?? 1_000_000,
      storage: StorageType.File,
      duplicate_window: nanos(120_000),
    },
    {
      name: names.streams.dlq,
      subjects: [names.subjects.dlq],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_msgs: 1_000_000,
      max_age: nanos(limits.dlqMaxAgeMs ?? 30 * 24 * 3600 * 1000),
      storage: StorageType.File,
    },
    {
      name: names.streams.events,
      subjects: [names.subjects.events],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(limits.eventsMaxAgeMs ?? 24 * 3600 * 1000),
      max_msgs: limits.eventsMaxMsgs ?? 10_000_000,
      storage: StorageType.File,
      duplicate_window: nanos(120_000),
    },
  ];
}

/** Creates each stream, or brings an existing one to this configuration. */
export async function ensureStreams(jsm: JetStreamManager, names: NatsNames, limits: StreamLimits = {}): Promise<void> {
  for (const cfg of streamConfigs(names, limits)) {
    try {
      await jsm.streams.info(cfg.name);
      await jsm.streams.update(cfg.name, cfg);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await jsm.streams.add(cfg);
      } catch (addErr) {
        // another replica created it between our info and add
        if (!/already in use|exists/i.test((addErr as Error).message)) throw addErr;
      }
    }
  }
}

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: string | number; message?: string; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10059 || e?.code === '404' || e?.code === 404 || /not found/i.test(e?.message ?? '');
}
