import type { Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { OptOuts } from '../generated.js';

export type OptOutRow = Selectable<OptOuts>;

export async function insertOptOut(ex: Executor, o: { phone: string; reason: string; source: string }): Promise<void> {
  await ex
    .insertInto('opt_outs')
    .values(o)
    .onConflict((oc) => oc.column('phone').doNothing())
    .execute();
}

export async function deleteOptOut(ex: Executor, phone: string): Promise<boolean> {
  const r = await ex.deleteFrom('opt_outs').where('phone', '=', phone).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

export async function findOptOut(ex: Executor, phone: string): Promise<OptOutRow | undefined> {
  return ex.selectFrom('opt_outs').selectAll().where('phone', '=', phone).executeTakeFirst();
}
