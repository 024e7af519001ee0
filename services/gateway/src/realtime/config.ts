/** The gateway's SSE settings; spread into GatewayConfig (one env var, one place). */
import Type from 'typebox';

export const realtimeSettings = {
  /**
   * `:` heartbeat comment (issue 6: 15 s; proxies drop idle streams) and `keepalive` event
   * (issue 17: EventSource cannot see comments; clients reconnect after two silent intervals)
   */
  HATCH_SSE_HEARTBEAT_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 15_000 }),
  /** `retry:` hint sent to EventSource clients (ms before reconnecting) */
  HATCH_SSE_RETRY_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 3000 }),
  /** events queued for one client before it counts as too slow and is disconnected */
  HATCH_SSE_CLIENT_QUEUE_MAX: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
  /** SSE connections per gateway process; past it: 200 + `retry:` + close */
  HATCH_SSE_MAX_CLIENTS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
  /**
   * Bytes of SSE frames the process holds for all its clients together (queued, held during
   * replays, written and not yet taken by the kernel) before the ones not reading that hold the
   * most are cut (hub.ts enforceBudget). 64 MiB, counted twice (frames are copied into socket
   * writes) in the gateway's worst case (memory-budget.ts), which test/ops/memory-budget.test.ts
   * holds to the memory limit in k8s/ and docker-compose.yaml. Per-client bounds alone would
   * allow 10,000 × 1,000 frames (~2 GB).
   */
  HATCH_SSE_QUEUE_BUDGET_BYTES: Type.Integer({ minimum: 65_536, maximum: 2 ** 40, default: 64 * 1024 * 1024 }),
  /**
   * SSE streams one principal (req.principal: an API token, or one UI sign-in) may hold on one
   * gateway process; past it the new one is 429 with Retry-After. 50: a person's browser tabs
   * (one EventSource each; browsers allow 6 connections per host over HTTP/1.1, ~100 streams
   * over HTTP/2) plus a few scripts, while no one caller can take more than 0.5 % of
   * HATCH_SSE_MAX_CLIENTS. Until per-person tokens exist, every script on the bootstrap token
   * shares one principal: raise it if they need more streams per replica.
   */
  HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 50 }),
};

/** The settings as the realtime piece reads them. */
export type RealtimeConfig = { readonly [K in keyof typeof realtimeSettings]: number };
