/**
 * JetStream streams: created (or updated to this shape) by every service at start, so no
 * deployment order matters. Names come from @hatch/contracts (natsNames).
 */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsNames } from '@hatch/contracts';

/**
 * The bounds of the work queue and the dead-letter stream (issue 14). Fixed in code, not
 * settings: every service calls ensureStreams at start, and replicas with different limits
 * would keep rewriting each other's stream configuration.
 *
 * - <P>_JOBS holds at most 1,000,000 jobs and 256 MiB (a job is ~200 bytes); past either, publishes are refused
 *   (DiscardNew: the job stays in the PostgreSQL outbox and is published later), never dropped.
 *   A job that can never be delivered leaves it: a worker dead-letters a job on its last
 *   allowed delivery, whatever went wrong (a provider error or its own); and a job that even so
 *   stayed (every worker died on it until the server's max_deliver, so no one decided) ages out
 *   after 7 days instead of taking space for good. PostgreSQL stays the source of truth: the
 *   outbox relay re-queues an SMS or email that made no progress (README, "Nothing stranded").
 * - <P>_DLQ keeps dead letters 30 days, at most 1,000,000 and 128 MiB, the oldest dropped first
 *   (DiscardOld: a new dead letter is never refused). The failed row in PostgreSQL is the
 *   record; a dead letter is for looking at and re-queueing (README, "Dead letters").
 *
 * A stream's max_bytes is reserved from the server's JetStream storage (max_file_store) when the
 * stream is created: 384 MiB per prefix, so many prefixes (tenants, parallel test runs) and a
 * small NATS volume still fit.
 */
export interface StreamLimits {
  /** most jobs waiting in the work queue; past it publishes are refused (DiscardNew), never silently dropped */
  jobsMaxMsgs?: number;
  /** most bytes of jobs waiting in the work queue (DiscardNew too) */
  jobsMaxBytes?: number;
  /** a job still in the work queue after this is removed (only one no worker could ever settle stays that long) */
  jobsMaxAgeMs?: number;
  /** dead letters kept this long */
  dlqMaxAgeMs?: number;
  /** most dead letters kept (the oldest dropped first) */
  dlqMaxMsgs?: number;
  /** most bytes of dead letters kept (the oldest dropped first) */
  dlqMaxBytes?: number;
  /** change events kept this long (the resume window) */
  eventsMaxAgeMs?: number;
  eventsMaxMsgs?: number;
}

/** `replicas`: num_replicas of every stream (HATCH_STREAM_REPLICAS; Bus.replicas). */
export function streamConfigs(names: NatsNames, limits: StreamLimits = {}, replicas = 1): Array<Partial<StreamConfig> & { name: string }> {
  const streams: Array<Partial<StreamConfig> & { name: string }> = [
    {
      name: names.streams.jobs,
      subjects: [names.subjects.jobs],
      // Work queue: a job is removed once acked. DiscardNew: with a limit and the default
      // DiscardOld, unconsumed jobs would be deleted silently (docs/reliability.md#jetstream).
      retention: RetentionPolicy.Workqueue,
      discard: DiscardPolicy.New,
      max_msgs: limits.jobsMaxMsgs ?? 1_000_000,
      max_bytes: limits.jobsMaxBytes ?? 256 * 1024 ** 2,
      max_age: nanos(limits.jobsMaxAgeMs ?? 7 * 24 * 3600 * 1000),
      storage: StorageType.File,
      duplicate_window: nanos(120_000),
    },
    {
      name: names.streams.dlq,
      subjects: [names.subjects.dlq],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_msgs: limits.dlqMaxMsgs ?? 1_000_000,
      max_bytes: limits.dlqMaxBytes ?? 128 * 1024 ** 2,
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
  return streams.map((cfg) => ({ ...cfg, num_replicas: replicas }));
}

/** Creates each stream, or brings an existing one to this configuration. */
export async function ensureStreams(jsm: JetStreamManager, names: NatsNames, limits: StreamLimits = {}, replicas = 1): Promise<void> {
  for (const cfg of streamConfigs(names, limits, replicas)) {
    try {
      await jsm.streams.info(cfg.name);
      await jsm.streams.update(cfg.name, cfg);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await jsm.streams.add(cfg);
      } catch (addErr) {
        // Another replica created it between our info and add: with this configuration the
        // server answers the add as done; with another (an older version's) it refuses, and the
        // next start's update brings it to this one.
        if (!isApiError(addErr, STREAM_NAME_IN_USE)) throw addErr;
      }
    }
  }
}

/**
 * nats-server's JSStreamNameExistErr ("stream name already in use with a different
 * configuration"); nats.js names only a few codes (JetStreamApiCodes), not this one.
 */
const STREAM_NAME_IN_USE = 10058;

/** A JetStream API error with one of these codes (the server's err_code, stable across versions; messages are not). */
export function isApiError(err: unknown, ...codes: number[]): err is JetStreamApiError {
  return err instanceof JetStreamApiError && codes.includes(err.code);
}

/** The stream, or the consumer, does not exist. */
export function isNotFound(err: unknown): boolean {
  return isApiError(err, JetStreamApiCodes.StreamNotFound, JetStreamApiCodes.ConsumerNotFound);
}
