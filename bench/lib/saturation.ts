/**
 * P4's and P6's saturation search (issue 19: "offer more until the server's core is full", not a
 * per-core figure extrapolated from a low load). The offered load goes up step by step; each step
 * is measured (deliveries counted at the clients, CPU of the server and of each client process,
 * the whole machine) and classified by `classifyStep`; the search stops at the first step that is
 * not `none`, when the steps run out, or when its time bound is reached.
 *
 * The load generator (the SSE client processes) shares the machine's cores with the server, so a
 * stop is only called a server saturation when the server is the limit: its CPU is at ≥ 90 % of a
 * core, or deliveries fall behind what was offered while neither a client process nor the whole
 * machine is full. A client process at ≥ 90 % of its core is the load generator's limit; deliveries
 * behind with the whole machine busy is the machine's (the server could not get a core of its own).
 * No I/O here (bench/test/saturation.test.ts covers it).
 */

export interface StepReading {
  /** change events/s the step asked for */
  eventsPerS: number;
  /** deliveries/s offered: events actually written in the window × clients connected ÷ window */
  offered: number;
  /** deliveries/s counted at the clients in the window */
  delivered: number;
  /**
   * deliveries/s the server was fed: events that reached the servers' feed (the bridge's NATS
   * messages) in the window × clients ÷ window; when given, a step behind what was offered whose
   * server delivered what it was fed is the feed's limit (`upstream`)
   */
  fed?: number;
  /** the server process's CPU % of one core */
  serverCpuPct: number;
  /** CPU % of one core of each SSE client process */
  clientCpuPct: number[];
  /** whole machine busy %, of `cores` × 100 */
  machineBusyPct: number;
  cores: number;
}

/**
 * Why a step ends the search: `server` its core is full; `server-behind` deliveries fell behind
 * with no client process or the machine full (the server's own limit, e.g. sockets it cannot
 * drain); `clients` a client process is full (the load generator is the limit: not a server
 * saturation); `upstream` the events did not reach the servers at the offered rate (the writer →
 * journal → bridge → NATS path is the limit: not a server saturation); `machine` deliveries behind
 * with every core busy (shared cores: not a server saturation either); `none` keeps going.
 */
export type Limit = 'none' | 'server' | 'server-behind' | 'clients' | 'upstream' | 'machine';

export const SATURATION = {
  /** server CPU % of one core at which its core counts as full */
  serverCpuPct: 90,
  /** a client process at this CPU % of its core is the load generator's limit */
  clientCpuPct: 90,
  /** delivered below this fraction of offered is "behind" */
  behind: 0.95,
  /** the machine at this fraction of all its cores is full */
  machineBusy: 0.95,
} as const;

export const isServerLimit = (l: Limit | 'steps' | 'time'): boolean => l === 'server' || l === 'server-behind';

export function classifyStep(s: StepReading): { limit: Limit; why: string } {
  const busiestClient = Math.max(0, ...s.clientCpuPct);
  const behind = s.delivered < SATURATION.behind * s.offered;
  // upstream only when the feed was short AND the server delivered what it was fed: the bench's
  // own count of the feed can lag when its process is starved, so a short count alone proves nothing
  const fedShort = s.fed !== undefined && s.fed < SATURATION.behind * s.offered && s.delivered >= SATURATION.behind * s.fed;
  const kept = `${((100 * s.delivered) / Math.max(1, s.offered)).toFixed(0)} % of offered delivered${
    s.fed !== undefined ? `, ${((100 * s.fed) / Math.max(1, s.offered)).toFixed(0)} % fed` : ''
  }`;
  if (s.serverCpuPct >= SATURATION.serverCpuPct)
    return { limit: 'server', why: `server at ${s.serverCpuPct.toFixed(0)} % of a core (${kept})` };
  if (busiestClient >= SATURATION.clientCpuPct)
    return {
      limit: 'clients',
      why: `a client process at ${busiestClient.toFixed(0)} % of its core, server at ${s.serverCpuPct.toFixed(0)} % (${kept}): the load generator is the limit`,
    };
  if (!behind) return { limit: 'none', why: kept };
  if (fedShort)
    return {
      limit: 'upstream',
      why: `${kept}: the events did not reach the servers at the offered rate (server at ${s.serverCpuPct.toFixed(0)} %): the relay feeding them is the limit`,
    };
  if (s.machineBusyPct >= SATURATION.machineBusy * 100 * s.cores)
    return {
      limit: 'machine',
      why: `${kept} with the machine at ${s.machineBusyPct.toFixed(0)} % of ${100 * s.cores} % and the server at ${s.serverCpuPct.toFixed(0)} %: shared cores are the limit`,
    };
  return { limit: 'server-behind', why: `${kept} with the server at ${s.serverCpuPct.toFixed(0)} % and CPU to spare` };
}

export interface Step<R extends StepReading = StepReading> {
  reading: R;
  limit: Limit;
  why: string;
}

export interface SearchResult<R extends StepReading = StepReading> {
  steps: Array<Step<R>>;
  /** the step the search stopped at (the last one measured); undefined when none was */
  at: Step<R> | undefined;
  /** what stopped it: a step's limit, the steps running out, or the time bound */
  stoppedBy: Limit | 'steps' | 'time';
}

/**
 * Measures `schedule` (events/s, ascending) in order until a step is limited, the schedule ends,
 * or `now()` passes `deadline` before the next step (steps already started finish).
 */
export async function saturationSearch<R extends StepReading>(opts: {
  schedule: readonly number[];
  deadline: number;
  now?: () => number;
  measure(eventsPerS: number): Promise<R>;
}): Promise<SearchResult<R>> {
  const now = opts.now ?? (() => performance.now());
  const steps: Array<Step<R>> = [];
  for (const rate of opts.schedule) {
    if (now() >= opts.deadline) return { steps, at: steps.at(-1), stoppedBy: 'time' };
    const reading = await opts.measure(rate);
    const { limit, why } = classifyStep(reading);
    steps.push({ reading, limit, why });
    if (limit !== 'none') return { steps, at: steps.at(-1), stoppedBy: limit };
  }
  return { steps, at: steps.at(-1), stoppedBy: 'steps' };
}

/** Deliveries/s per core of the server at a step: delivered ÷ its CPU share (a share under 5 % counts as 5 %). */
export const perCore = (s: StepReading): number => s.delivered / Math.max(0.05, s.serverCpuPct / 100);

/**
 * The step a search's figure is read at: the stop when the server was the limit (its saturation
 * point); otherwise the highest step that kept up (the stop itself being a collapse under another
 * limit, where the server's CPU went to work whose deliveries were not counted), or the stop when
 * no step kept up. `saturated` says which.
 */
export function reportedStep<R extends StepReading>(r: SearchResult<R>): { step: Step<R> | undefined; saturated: boolean } {
  if (isServerLimit(r.stoppedBy)) return { step: r.at, saturated: true };
  const kept = r.steps.filter((s) => s.limit === 'none').at(-1);
  return { step: kept ?? r.at, saturated: false };
}

/** What a stop means, for the report: a server saturation, or which other limit was hit first. */
export function describeStop(r: SearchResult): string {
  const s = r.at;
  if (!s) return 'no step measured';
  const at = `${s.reading.eventsPerS} events/s`;
  switch (r.stoppedBy) {
    case 'server':
    case 'server-behind':
      return `saturated at ${at}: ${s.why}`;
    case 'clients':
    case 'upstream':
    case 'machine':
      return `NOT a server saturation, stopped at ${at}: ${s.why}`;
    case 'steps':
      return `not saturated by the largest step (${at}): ${s.why}`;
    case 'time':
      return `not saturated within the time bound (last step ${at}): ${s.why}`;
    default:
      return s.why;
  }
}
