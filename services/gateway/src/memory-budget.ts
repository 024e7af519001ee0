/**
 * The gateway's worst-case memory under its settings (issue 14, "Slow and large clients"):
 * every bounded buffer at its bound at once. `test/ops/memory-budget.test.ts` checks the
 * defaults against the gateway's memory limit in k8s/ and docker-compose.yaml, so a raised
 * default or a lowered limit cannot drift apart; the gateway logs it at start and warns when
 * its cgroup limit is lower.
 * Per-item costs are measured (bench/results, figures quoted) or deliberately pessimistic.
 */
import fs from 'node:fs';
import type { GatewayConfig } from './config.js';
import { SEND_BATCHER_MAX_QUEUED } from './send-batcher.js';
import { SMS_BODY_MAX } from '@hatch/contracts';
import { GROUPED_WRITES_MAX_QUEUED } from '@hatch/service';
import { BUS_PULL_BYTES, HUB_TICK_EVENTS } from './realtime/hub.js';
import { configuredScryptParams, scryptMemory } from './passwords.js';

const MiB = 1024 * 1024;

/** idle RSS from the build: bench P7 measured 82 MB (bench/results/2026-11-30T07-39-39.md); from source through tsx ~130 MB */
export const GATEWAY_BASELINE_BYTES = 160 * MiB;
/** RSS per idle SSE connection: bench P5 measured 13.5–13.9 KiB (bench/results/2026-11-30T07-39-39.md) */
export const SSE_CONNECTION_BYTES = 14 * 1024;
/**
 * A body being received is held as raw chunks, then as the JSON text and the parsed object
 * (an attachment's base64 string), then its decoded bytes while written: 3 copies at the peak.
 */
export const BODY_COPIES = 3;
/** SSE frames are counted once in the hub's budget and may exist once more as socket writes (hub.ts) */
export const SSE_BUDGET_COPIES = 2;
/**
 * What the hub fans out to every client before the end-of-tick budget pass (it yields after
 * HUB_TICK_EVENTS, within a batch message too): a pointer per frame per client, the frame
 * strings being shared.
 */
export const SSE_TICK_FRAMES = HUB_TICK_EVENTS;
/** the events stream's pull buffer: raw messages and their decoded copies */
export const BUS_PULL_COPIES = 2;
/**
 * a provider status report waiting for its grouped write (webhooks/twilio.ts, webhooks/sendgrid.ts):
 * ids, status, provider code and detail (strings the webhooks cut short), promise and objects
 */
export const STATUS_WAITING_BYTES = 2 * 1024;
/** grouped status writes in the gateway: Twilio's message statuses, SendGrid's email statuses */
export const STATUS_WRITE_KINDS = 2;
/** a waiting send: its body (UTF-16, at most SMS_BODY_MAX characters), recipient, promise and row objects */
export const SEND_WAITING_BYTES = SMS_BODY_MAX * 2 + 4 * 1024;

export interface MemoryTerm {
  what: string;
  bytes: number;
}

export function worstCaseMemory(config: GatewayConfig): { bytes: number; terms: MemoryTerm[] } {
  const terms: MemoryTerm[] = [
    { what: 'idle process', bytes: GATEWAY_BASELINE_BYTES },
    {
      what: `SSE connections (HATCH_SSE_MAX_CLIENTS × ${SSE_CONNECTION_BYTES} B)`,
      bytes: config.HATCH_SSE_MAX_CLIENTS * SSE_CONNECTION_BYTES,
    },
    {
      what: `SSE frames held (HATCH_SSE_QUEUE_BUDGET_BYTES × ${SSE_BUDGET_COPIES})`,
      bytes: config.HATCH_SSE_QUEUE_BUDGET_BYTES * SSE_BUDGET_COPIES,
    },
    {
      what: `one tick's fan-out past the SSE budget (HATCH_SSE_MAX_CLIENTS × ${SSE_TICK_FRAMES} × 8 B)`,
      bytes: config.HATCH_SSE_MAX_CLIENTS * SSE_TICK_FRAMES * 8,
    },
    {
      what: `the events stream's pull buffer (${BUS_PULL_BYTES} B × ${BUS_PULL_COPIES})`,
      bytes: BUS_PULL_BYTES * BUS_PULL_COPIES,
    },
    {
      what: `request bodies (HATCH_BODY_BYTES_IN_FLIGHT_MAX × ${BODY_COPIES})`,
      bytes: config.HATCH_BODY_BYTES_IN_FLIGHT_MAX * BODY_COPIES,
    },
    {
      what: `sends waiting for the group commit (${SEND_BATCHER_MAX_QUEUED} × ${SEND_WAITING_BYTES} B)`,
      bytes: SEND_BATCHER_MAX_QUEUED * SEND_WAITING_BYTES,
    },
    {
      what: `provider status reports waiting for their grouped write (${STATUS_WRITE_KINDS} × ${GROUPED_WRITES_MAX_QUEUED} × ${STATUS_WAITING_BYTES} B)`,
      bytes: STATUS_WRITE_KINDS * GROUPED_WRITES_MAX_QUEUED * STATUS_WAITING_BYTES,
    },
    {
      what: `password hashes (HATCH_PASSWORD_HASH_CONCURRENCY × ${scryptMemory(configuredScryptParams(config)) / MiB} MiB scrypt)`,
      bytes: config.HATCH_PASSWORD_HASH_CONCURRENCY * scryptMemory(configuredScryptParams(config)),
    },
  ];
  return { bytes: terms.reduce((sum, t) => sum + t.bytes, 0), terms };
}

/** The process's cgroup v2 memory limit in bytes, when it has one. */
export function cgroupMemoryLimit(file = '/sys/fs/cgroup/memory.max'): number | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    const n = Number(text);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
