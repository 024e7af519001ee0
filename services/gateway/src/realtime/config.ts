/** The gateway's SSE settings; spread into GatewayConfig (one env var, one place). */
import Type from 'typebox';

export const realtimeSettings = {
  /** `:` heartbeat comment on every SSE stream (issue 6: 15 s; proxies drop idle streams) */
  HATCH_SSE_HEARTBEAT_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 15_000 }),
  /** `retry:` hint sent to EventSource clients (ms before reconnecting) */
  HATCH_SSE_RETRY_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 3000 }),
  /** events queued for one client before it counts as too slow and is disconnected */
  HATCH_SSE_CLIENT_QUEUE_MAX: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
  /** SSE connections per gateway process; past it: 200 + `retry:` + close */
  HATCH_SSE_MAX_CLIENTS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
};
