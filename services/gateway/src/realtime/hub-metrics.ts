/** The realtime hub's metrics; gauges read the hub's state when scraped (`view`). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type HubMetrics = ReturnType<typeof createHubMetrics>;

export function createHubMetrics(
  registry: Registry,
  view: { clients(): number; queueBytes(): number; principals(): number; lastHeartbeatAt(): number | undefined },
) {
  const registers = [registry];
  return {
    clients: new Gauge({
      name: 'hatch_sse_clients',
      help: 'connected SSE clients',
      registers,
      collect() {
        this.set(view.clients());
      },
    }),
    queueBytes: new Gauge({
      name: 'hatch_sse_queue_bytes',
      help: 'bytes of SSE frames held for clients: queued, held during replays, written and not yet taken by the kernel (budget: HATCH_SSE_QUEUE_BUDGET_BYTES)',
      registers,
      collect() {
        this.set(view.queueBytes());
      },
    }),
    principals: new Gauge({
      name: 'hatch_sse_principals',
      help: 'principals holding at least one SSE stream (each capped at HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL)',
      registers,
      collect() {
        this.set(view.principals());
      },
    }),
    events: new Counter({ name: 'hatch_sse_events_received_total', help: 'change events received from NATS', registers }),
    writes: new Counter({ name: 'hatch_sse_writes_total', help: 'coalesced socket writes to SSE clients', registers }),
    slow: new Counter({ name: 'hatch_sse_slow_client_disconnects_total', help: 'SSE clients cut off for not keeping up', registers }),
    budgetCuts: new Counter({
      name: 'hatch_sse_budget_disconnects_total',
      help: 'SSE clients not reading cut off because the process queue byte budget was exceeded (counted in hatch_sse_slow_client_disconnects_total too)',
      registers,
    }),
    replays: new Counter({ name: 'hatch_sse_replays_total', help: 'SSE resumes replayed from Last-Event-ID', registers }),
    catchUps: new Counter({
      name: 'hatch_sse_catchups_total',
      help: 'times this gateway found events missing from the events stream (reason gap: an event named a predecessor it never received; heartbeat: a heartbeat was past it) and read them from the journal',
      labelNames: ['reason'],
      registers,
    }),
    caughtUp: new Counter({
      name: 'hatch_sse_caught_up_events_total',
      help: 'change events this gateway delivered from the journal because the events stream lacked them',
      registers,
    }),
    replayOverruns: new Counter({
      name: 'hatch_sse_replay_overruns_total',
      help: 'live frames held during a replay went past their bound: dropped, and the replay extended over them',
      registers,
    }),
    resets: new Counter({
      name: 'hatch_sse_resets_total',
      help: 'reset events (Last-Event-ID not resumable)',
      labelNames: ['reason'],
      registers,
    }),
    laggingResumes: new Counter({
      name: 'hatch_sse_lagging_resumes_total',
      help: 'resumes with an id this gateway has not reached yet (the journal holds it): the stream ends for a retry instead of a reset',
      registers,
    }),
    rejected: new Counter({
      name: 'hatch_sse_rejected_total',
      help: 'SSE connections refused (limit or not ready)',
      labelNames: ['reason'],
      registers,
    }),
    lag: new Histogram({
      name: 'hatch_realtime_lag_seconds',
      help: 'change time to fan-out in this gateway',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    heartbeatAge: new Gauge({
      name: 'hatch_realtime_heartbeat_age_seconds',
      help: 'seconds since the last bridge heartbeat reached this gateway',
      registers,
      collect() {
        const at = view.lastHeartbeatAt();
        this.set(at === undefined ? -1 : (Date.now() - at) / 1000);
      },
    }),
  };
}
