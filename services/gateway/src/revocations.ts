/**
 * Revocations reach every gateway replica within seconds (issue 18): a revoked session or token,
 * or a disabled user, is published on the core NATS subject `<p>.auth.revoked` (AuthRevoked,
 * @hatch/contracts). Every replica, this one included, hears it and runs its listeners: the
 * authenticator forgets the cached credential, the realtime piece closes the principal's SSE
 * streams.
 *
 * Core NATS, not a stream: a message published while a replica is disconnected is lost to it,
 * and nothing needs replaying: the row is already gone or revoked in PostgreSQL, so that
 * replica refuses the credential once its cache entry ages out (AUTH_CACHE_TTL_MS, auth.ts).
 * This replica's own listeners run before publish() returns, bus or no bus.
 */
import { AuthRevoked, decode, encode, type NatsNames } from '@hatch/contracts';
import type { Bus } from '@hatch/bus';
import type { Logger } from '@hatch/log';

export type RevocationListener = (ev: AuthRevoked) => void;

export interface Revocations {
  publish(ev: AuthRevoked): void;
  onRevoked(listener: RevocationListener): void;
  stop(): void;
}

export function startRevocations(deps: { bus: Bus; names: NatsNames; log: Logger }): Revocations {
  const log = deps.log.child({ component: 'revocations' });
  const listeners: RevocationListener[] = [];
  const run = (ev: AuthRevoked) => {
    for (const l of listeners) {
      try {
        l(ev);
      } catch (err) {
        log.warn({ err: { message: (err as Error).message }, kind: ev.kind }, 'revocation listener failed');
      }
    }
  };
  const subject = deps.names.subjects.authRevoked;
  const sub = deps.bus.nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) {
        log.warn({ err: { message: err.message } }, 'revocation subscription failed');
        return;
      }
      try {
        run(decode(AuthRevoked, msg.data));
      } catch (e) {
        log.warn({ err: { message: (e as Error).message } }, 'undecodable revocation; ignored');
      }
    },
  });
  return {
    publish(ev) {
      run(ev);
      try {
        deps.bus.nc.publish(subject, encode(AuthRevoked, ev));
      } catch (err) {
        // Other replicas then refuse it once their cache entry ages out (header).
        log.warn({ err: { message: (err as Error).message }, kind: ev.kind }, 'revocation not published');
      }
    },
    onRevoked(listener) {
      listeners.push(listener);
    },
    stop() {
      sub.unsubscribe();
    },
  };
}
