import t from 'tap';
import { createWorkGate } from '../src/webhooks/work-gate.js';

/** A task that runs until its `finish()` is called. */
function controllable() {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const task = { started: false, finish: () => finish(), run: async () => ((task.started = true), done) };
  return task;
}

t.test(
  'a WorkGate runs `concurrency` tasks at once, queues `queue` more in order, and refuses the next at once without running it',
  async (t) => {
    const gate = createWorkGate({ concurrency: 2, queue: 2 });
    const tasks = Array.from({ length: 4 }, controllable);
    const runs = tasks.map((task) => gate.tryRun(task.run));
    t.ok(
      runs.every((r) => r !== undefined),
      'four admitted',
    );
    await Promise.resolve();
    t.same(
      tasks.map((x) => x.started),
      [true, true, false, false],
      'two run, two wait',
    );
    t.equal(gate.pending, 4);
    t.equal(gate.full, true);

    let ran = false;
    t.equal(
      gate.tryRun(async () => {
        ran = true;
      }),
      undefined,
      'the fifth is refused',
    );
    t.equal(ran, false, 'and never runs');

    tasks[0]?.finish();
    await runs[0];
    await Promise.resolve();
    t.same(
      tasks.map((x) => x.started),
      [true, true, true, false],
      'a finished task hands its slot to the first waiting one',
    );
    t.equal(gate.full, false, 'room for one more');
    const late = controllable();
    const lateRun = gate.tryRun(late.run);
    t.ok(lateRun, 'admitted again');
    t.equal(gate.full, true);

    for (const x of [...tasks, late]) x.finish();
    await Promise.all([...runs, lateRun]);
    t.equal(gate.pending, 0, 'all done');
    t.equal(gate.full, false);
  },
);

t.test('a task that fails gives its slot back and its caller gets the error', async (t) => {
  const gate = createWorkGate({ concurrency: 1, queue: 0 });
  await t.rejects(
    gate.tryRun(async () => {
      throw new Error('boom');
    }) ?? Promise.resolve(),
    /boom/,
  );
  t.equal(gate.pending, 0);
  t.equal(await gate.tryRun(async () => 42), 42, 'the slot is free again');
});
