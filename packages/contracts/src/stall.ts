/**
 * When an SSE client treats its stream as stalled (contract "Server-Sent Events", issue 17): a
 * stopped gateway (SIGSTOP, a hung process) keeps its TCP connections open and silent, and an
 * EventSource would wait for ever. Every stream gets a `keepalive` event each heartbeat
 * interval, so nothing at all (no event, no keepalive) for STALL_INTERVALS intervals means the
 * stream is stalled: the client drops it and reconnects with Last-Event-ID, reaching another
 * replica. One rule for the web UI (web/src/live.ts) and for Node clients (tests, the soak).
 * Pure (timers only): the browser uses it too.
 */

/** Intervals of silence that make a stream stalled. */
export const STALL_INTERVALS = 2;
/**
 * The interval assumed until the stream's `connected` event names its own (heartbeat_ms): the
 * contract's longest default heartbeat.
 */
export const ASSUMED_HEARTBEAT_MS = 30_000;

export interface StallWatch {
  /** something arrived (an event, a keepalive, a comment the client can see) */
  seen(): void;
  /** the stream's heartbeat interval (from its `connected` event) */
  setHeartbeat(ms: number): void;
  stop(): void;
}

/** Calls `onStall` once when nothing was seen for STALL_INTERVALS heartbeat intervals. */
export function watchForStall(onStall: () => void, heartbeatMs = ASSUMED_HEARTBEAT_MS): StallWatch {
  let limit = STALL_INTERVALS * heartbeatMs;
  let lastSeen = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  // One timer re-armed only when it fires (not at every event): cheap under a burst of events.
  const arm = (ms: number) => {
    timer = setTimeout(check, Math.max(1, ms));
  };
  function check() {
    if (stopped) return;
    const silentMs = Date.now() - lastSeen;
    if (silentMs >= limit) {
      stopped = true;
      onStall();
      return;
    }
    arm(limit - silentMs);
  }
  arm(limit);
  return {
    seen() {
      lastSeen = Date.now();
    },
    setHeartbeat(ms) {
      limit = STALL_INTERVALS * ms;
      if (timer !== undefined) clearTimeout(timer);
      if (!stopped) arm(limit - (Date.now() - lastSeen));
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
