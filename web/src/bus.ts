/** In-window fan-out of live events to whichever views are mounted. */
import type { EmailUpdateEvent, MessageUpdateEvent } from '@hatch/contracts';

export type LiveEvent = { kind: 'message'; event: MessageUpdateEvent } | { kind: 'email'; event: EmailUpdateEvent } | { kind: 'refetch' };
type Fn = (e: LiveEvent) => void;
const listeners = new Set<Fn>();

export function subscribe(fn: Fn): () => void {
  listeners.add(fn);
  return () => {
    listeners.delete(fn);
  };
}

export function publish(e: LiveEvent): void {
  for (const fn of listeners) fn(e);
}
