import t from 'tap';
import { sql } from 'kysely';
import { createTestDb } from '@hatch/testing';
import { createDb, createGroupCommit } from '../src/index.js';

t.test(
  'a group that fails on one bad item is retried item by item, in submission order, one statement at a time; the others commit',
  async (t) => {
    const test = await createTestDb(t);
    const pool = createDb(test.url, { max: 10 });
    t.teardown(() => pool.close(1));
    await sql`CREATE TABLE gc_items (seq serial PRIMARY KEY, v integer NOT NULL CHECK (v >= 0))`.execute(pool.db);

    let inFlight = 0;
    let maxInFlight = 0;
    const groups: number[] = [];
    const release: Array<() => void> = [];
    const group = createGroupCommit<number, number>(
      {
        async write(items) {
          groups.push(items.length);
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            // the first statement waits until the rest are queued behind it, so they form one group
            if (groups.length === 1) await new Promise<void>((resolve) => release.push(resolve));
            const rows = await sql<{ v: number }>`
              INSERT INTO gc_items (v) SELECT unnest(${items}::int[]) RETURNING v`.execute(pool.db);
            return rows.rows.map((r) => r.v);
          } finally {
            inFlight--;
          }
        },
        full: () => new Error('full'),
      },
      { maxBatch: 100, maxInFlight: 1 },
    );

    const first = group.submit(1000);
    // items 0..19 with one bad one (-1) in the middle: they wait behind the first statement
    const values = Array.from({ length: 20 }, (_, i) => (i === 7 ? -1 : i));
    const rest = values.map((v) =>
      group.submit(v).then(
        (o) => ({ ok: o }),
        (err: unknown) => ({ err: (err as { code?: string }).code }),
      ),
    );
    t.equal(group.queued(), 20, 'the twenty wait for the slot');
    release.shift()?.();
    t.equal(await first, 1000);
    const outcomes = await Promise.all(rest);

    t.same(groups, [1, 20, ...values.map(() => 1)], 'one statement for the twenty, then one per item');
    t.equal(maxInFlight, 1, 'the item-by-item retry never holds more than the one slot');
    outcomes.forEach((o, i) => {
      if (i === 7) t.same(o, { err: '23514' }, 'the bad item fails with its own error');
      else t.same(o, { ok: values[i] }, `item ${i} committed`);
    });
    const stored = await sql<{ v: number }>`SELECT v FROM gc_items ORDER BY seq`.execute(pool.db);
    t.same(
      stored.rows.map((r) => r.v),
      [1000, ...values.filter((v) => v >= 0)],
      'the retried items were written in the order they were submitted',
    );
  },
);
