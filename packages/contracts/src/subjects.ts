/**
 * NATS stream and subject names: the one definition. `HATCH_NATS_PREFIX` (default HATCH) names
 * the streams (`<P>_JOBS`, `<P>_EVENTS`, `<P>_DLQ`) and, lower-cased, prefixes the subjects, so
 * test runs and tenants share one NATS without seeing each other.
 */
export const DEFAULT_NATS_PREFIX = 'HATCH';

export interface NatsNames {
  prefix: string;
  streams: { jobs: string; events: string; dlq: string };
  subjects: {
    /** every job subject (the JOBS stream's filter) */
    jobs: string;
    smsJob: string;
    emailJob: string;
    /** every change event (the EVENTS stream's filter) */
    events: string;
    /** single change events of one table: `<p>.events.messages`, `<p>.events.emails` (bridges before batches), and heartbeats */
    eventFor(table: 'messages' | 'emails' | 'heartbeat'): string;
    /**
     * `<p>.events.batch`: the bridge's batches of change events of every table, in journal order
     * (BusChangeBatch). Inside the events stream's filter, so an existing stream takes it as is.
     */
    eventBatch: string;
    /** dead letters: `<p>.dlq.sms`, `<p>.dlq.email`, `<p>.dlq` wildcard */
    dlq: string;
    dlqFor(kind: 'sms' | 'email'): string;
    /** core NATS (no stream): a session or token was revoked, a user disabled (AuthRevoked) */
    authRevoked: string;
  };
  consumers: { smsSender: string; emailSender: string };
}

export function natsNames(prefix: string = DEFAULT_NATS_PREFIX): NatsNames {
  if (!/^[A-Za-z][A-Za-z0-9_]{0,30}$/.test(prefix)) throw new Error(`invalid NATS prefix ${JSON.stringify(prefix)}`);
  const P = prefix.toUpperCase();
  const p = prefix.toLowerCase();
  return {
    prefix: P,
    streams: { jobs: `${P}_JOBS`, events: `${P}_EVENTS`, dlq: `${P}_DLQ` },
    subjects: {
      jobs: `${p}.jobs.>`,
      smsJob: `${p}.jobs.sms`,
      emailJob: `${p}.jobs.email`,
      events: `${p}.events.>`,
      eventFor: (table) => `${p}.events.${table}`,
      eventBatch: `${p}.events.batch`,
      dlq: `${p}.dlq.>`,
      dlqFor: (kind) => `${p}.dlq.${kind}`,
      authRevoked: `${p}.auth.revoked`,
    },
    consumers: { smsSender: `${p.replace(/_/g, '-')}-sms-sender`, emailSender: `${p.replace(/_/g, '-')}-email-sender` },
  };
}
