/**
 * Scenarios P1–P7 (issue 10). Each one measures Hatch and, in the same run, the raw limit it is
 * judged against; every loop is bounded by a duration or a count.
 */
import { p1, p2 } from './sends.js';
import { p3, p4, p5, p6 } from './sse.js';
import { p7 } from './startup.js';

export type { Ctx, PgBackend, ScenarioResult } from './context.js';

export const SCENARIOS = { P7: p7, P1: p1, P2: p2, P3: p3, P4: p4, P6: p6, P5: p5 } as const;
