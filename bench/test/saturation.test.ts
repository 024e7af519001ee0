/**
 * P4's and P6's saturation search on synthetic readings: which limit a step hits (server core
 * full, server behind, a client process full, the whole machine full) and when the search stops.
 */
import t from 'tap';
import { classifyStep, describeStop, perCore, reportedStep, saturationSearch, type StepReading } from '../lib/saturation.js';

const step = (over: Partial<StepReading>): StepReading => ({
  eventsPerS: 100,
  offered: 100_000,
  delivered: 100_000,
  serverCpuPct: 30,
  clientCpuPct: [20, 20],
  machineBusyPct: 100,
  cores: 2,
  ...over,
});

t.test('a step is classified by the server first, then the clients, then being behind', async (t) => {
  const cases: Array<[Partial<StepReading>, string, string]> = [
    [{}, 'none', 'keeping up with CPU to spare'],
    [{ serverCpuPct: 92 }, 'server', 'server core full, even while keeping up'],
    [{ serverCpuPct: 95, clientCpuPct: [99, 99] }, 'server', 'a full server core counts first'],
    [{ clientCpuPct: [40, 91] }, 'clients', 'one client process full: the load generator is the limit'],
    [{ delivered: 96_000 }, 'none', 'within 5 % of offered is keeping up'],
    [{ delivered: 80_000 }, 'server-behind', 'behind with CPU to spare: the server'],
    [{ delivered: 80_000, machineBusyPct: 195 }, 'machine', 'behind with every core busy: the shared machine, not the server'],
    [{ machineBusyPct: 199 }, 'none', 'a busy machine alone (other users) does not stop a step that keeps up'],
    [{ delivered: 0, offered: 0 }, 'none', 'nothing offered, nothing behind'],
    [{ fed: 50_000, delivered: 50_000 }, 'upstream', 'events that never reached the server: the relay feeding it is the limit'],
    [{ fed: 98_000, delivered: 97_000 }, 'none', 'fed and delivered'],
    [{ fed: 90_000, delivered: 97_000 }, 'none', "a short count of the feed alone (the bench's own lag) stops nothing"],
    [{ fed: 98_000, delivered: 80_000 }, 'server-behind', 'fed in full, delivered short: the server'],
    [{ fed: 60_000, delivered: 40_000 }, 'server-behind', 'the server also behind what it was fed: the server'],
  ];
  for (const [over, limit, why] of cases) t.equal(classifyStep(step(over)).limit, limit, why);
  t.match(classifyStep(step({ clientCpuPct: [40, 91] })).why, /load generator/);
});

t.test('the search stops at the first limited step, when the steps run out, or at its time bound', async (t) => {
  // the server's CPU grows with the offered rate until its core is full at 400 events/s
  const model = (rate: number) => step({ eventsPerS: rate, offered: rate * 1000, delivered: rate * 1000, serverCpuPct: rate / 4 });
  const measured: number[] = [];
  const r = await saturationSearch({
    schedule: [50, 100, 200, 400, 800],
    deadline: Number.POSITIVE_INFINITY,
    measure: async (rate) => (measured.push(rate), model(rate)),
  });
  t.same(measured, [50, 100, 200, 400], 'no step after the saturated one');
  t.equal(r.stoppedBy, 'server');
  t.equal(r.at?.reading.eventsPerS, 400);
  t.equal(perCore(r.at?.reading as StepReading), 400_000, 'delivered ÷ the server CPU share');
  t.match(describeStop(r), /^saturated at 400 events\/s/);

  const clientBound = await saturationSearch({
    schedule: [50, 100, 200],
    deadline: Number.POSITIVE_INFINITY,
    measure: async (rate) => step({ eventsPerS: rate, serverCpuPct: 40, clientCpuPct: [rate / 2, 10] }),
  });
  t.equal(clientBound.stoppedBy, 'clients');
  t.equal(clientBound.at?.reading.eventsPerS, 200);
  t.match(describeStop(clientBound), /^NOT a server saturation/);
  t.equal(reportedStep(r).step?.reading.eventsPerS, 400, 'a server saturation is read at its stop');
  t.ok(reportedStep(r).saturated);
  t.equal(reportedStep(clientBound).step?.reading.eventsPerS, 100, 'another limit: read at the highest step that kept up');
  t.notOk(reportedStep(clientBound).saturated);
  const firstStep = await saturationSearch({
    schedule: [50, 100],
    deadline: Number.POSITIVE_INFINITY,
    measure: async (rate) => step({ eventsPerS: rate, delivered: 10_000, machineBusyPct: 200 }),
  });
  t.equal(firstStep.stoppedBy, 'machine');
  t.equal(reportedStep(firstStep).step?.reading.eventsPerS, 50, 'no step kept up: read at the stop');

  const never = await saturationSearch({ schedule: [50, 100], deadline: Number.POSITIVE_INFINITY, measure: async (rate) => model(rate) });
  t.equal(never.stoppedBy, 'steps');
  t.equal(never.steps.length, 2);
  t.match(describeStop(never), /^not saturated by the largest step/);

  let clock = 0;
  const timed = await saturationSearch({
    schedule: [50, 100, 200, 400],
    deadline: 25,
    now: () => clock,
    measure: async (rate) => ((clock += 10), model(rate)),
  });
  t.equal(timed.stoppedBy, 'time', 'a step is not started past the deadline');
  t.same(
    timed.steps.map((s) => s.reading.eventsPerS),
    [50, 100, 200],
  );
  const none = await saturationSearch({ schedule: [50], deadline: 0, now: () => 1, measure: async (rate) => model(rate) });
  t.equal(none.at, undefined);
  t.equal(describeStop(none), 'no step measured');
});
