import t from 'tap';
import { canEmailMoveTo, canMoveTo, isFinalMessageStatus, MESSAGE_STATUSES, EMAIL_STATUSES } from '../src/index.js';

t.test('message status moves only forward', async (t) => {
  t.ok(canMoveTo('queued', 'sending'));
  t.ok(canMoveTo('sending', 'sent'));
  t.ok(canMoveTo('sent', 'delivered'));
  t.ok(canMoveTo('queued', 'delivered'), 'a callback may skip steps');
  t.notOk(canMoveTo('delivered', 'sent'), 'a late "sent" after "delivered" is ignored');
  t.notOk(canMoveTo('sent', 'sending'));
  t.notOk(canMoveTo('sent', 'sent'), 'a duplicate is not a move');
});

t.test('final statuses do not replace each other; born-final ones never move', async (t) => {
  t.notOk(canMoveTo('delivered', 'undelivered'));
  t.notOk(canMoveTo('failed', 'delivered'));
  t.notOk(canMoveTo('received', 'sent'));
  t.notOk(canMoveTo('stored', 'delivered'));
  for (const s of ['delivered', 'undelivered', 'failed'] as const) t.ok(isFinalMessageStatus(s), `${s} is final`);
  t.notOk(isFinalMessageStatus('sent'));
});

t.test('email status moves only forward; opens are not statuses', async (t) => {
  t.ok(canEmailMoveTo('sent', 'deferred'));
  t.ok(canEmailMoveTo('deferred', 'delivered'));
  t.notOk(canEmailMoveTo('delivered', 'deferred'));
  t.notOk(canEmailMoveTo('bounced', 'delivered'));
  t.notOk((EMAIL_STATUSES as readonly string[]).includes('open'));
});

t.test('the status lists are the contract lists', async (t) => {
  t.same([...MESSAGE_STATUSES].sort(), ['delivered', 'failed', 'queued', 'received', 'sending', 'sent', 'stored', 'undelivered']);
  t.same([...EMAIL_STATUSES].sort(), ['bounced', 'deferred', 'delivered', 'dropped', 'failed', 'queued', 'sending', 'sent']);
});
