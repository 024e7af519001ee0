/** In-window fan-out of live events to whichever views are mounted. */
import { useEffect, useRef } from 'preact/hooks';
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

/**
 * A mounted view's share of the stream: `refetch` (after a `reset`, or a reconnect that could not
 * resume) reloads the view with `reload`, because single events cannot cover the gap; every other
 * event goes to `onEvent`. The handler is read when an event arrives, so it always sees the
 * view's latest props without a deps list; the subscription is renewed only when `reload` is.
 */
export function useLiveEvents(reload: () => Promise<void>, onEvent: (e: Exclude<LiveEvent, { kind: 'refetch' }>) => void): void {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(
    () =>
      subscribe((e) => {
        if (e.kind === 'refetch') void reload();
        else handler.current(e);
      }),
    [reload],
  );
}
