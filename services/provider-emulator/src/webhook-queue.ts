/**
 * The emulator's background webhook deliveries (Twilio status callbacks, SendGrid event
 * batches): ONE place that builds a provider's signed request, records the delivery where the
 * admin routes show it, posts it with the provider's retry policy and logs a refusal.
 *
 * What differs per provider is a parameter: the wire format (payload encoding, content type,
 * user agent, signature headers), the policy (attempts, backoff, per-attempt timeout: the
 * WebhookClient enforces them), and the ordering:
 * - `send()`: every delivery on its own; a retried one can arrive after a later one, as with
 *   SendGrid's event batches (receivers must not assume order).
 * - `lane()`: deliveries of one lane go out one at a time in enqueue order, a retried one
 *   holding the next back (Twilio's callbacks of one message, so tests read deterministically).
 *
 * Everything runs under Background: stop() cancels pending backoff sleeps and destroys in-flight
 * sockets, and no new delivery starts once it has begun; nothing reaches a receiver afterwards.
 */
import type { Logger } from '@hatch/log';
import type { Background } from './background.js';
import type { WebhookClient, WebhookPolicy, WebhookRequest } from './webhook-client.js';

/** How a provider puts a payload on the wire. */
export interface WebhookFormat<P> {
  encode(payload: P): string;
  /** content type, user agent and signature headers; `body` is the encoded payload */
  headers(url: string, payload: P, body: string): Record<string, string>;
}

/** What the admin records show of one delivery; updated when its attempts are over. */
export interface DeliveryRecord {
  url: string;
  at: string;
  /** attempts so far (0 while the first is in flight) */
  attempts: number;
  ok: boolean;
  httpStatus: number | null;
  error: string | null;
}

export interface Delivery<P, X extends object> {
  url: string;
  payload: P;
  /** the provider's own fields of the record (Twilio: status; SendGrid: the events) */
  fields: X;
  /** where the record is pushed, before the first attempt (admin reads see it in flight) */
  records: Array<X & DeliveryRecord>;
  /** names the delivery in the warning logged when the receiver never accepted it */
  context: Record<string, unknown>;
}

/** Built when the delivery's turn comes, so timestamps and signatures are of the send time. */
export type PrepareDelivery<P, X extends object> = () => Delivery<P, X>;

export interface WebhookQueueOptions<P> {
  bg: Background;
  client: WebhookClient;
  policy: WebhookPolicy;
  log: Logger;
  format: WebhookFormat<P>;
  /** the background task's name (in the log of a task that failed) */
  task: string;
  /** the warning logged when every attempt was refused or failed */
  refused: string;
}

export interface WebhookLane<P> {
  send<X extends object>(prepare: PrepareDelivery<P, X>): void;
}

export class WebhookQueue<P> {
  constructor(private readonly opts: WebhookQueueOptions<P>) {}

  /** The signed request of a payload (also for one-off posts outside the queue). */
  request(url: string, payload: P): WebhookRequest {
    const body = this.opts.format.encode(payload);
    return { url, headers: this.opts.format.headers(url, payload, body), body };
  }

  /** Starts the delivery now, independent of any other. */
  send<X extends object>(prepare: PrepareDelivery<P, X>): void {
    this.opts.bg.run(this.opts.task, () => this.deliver(prepare()));
  }

  /** A lane: its deliveries go out one at a time, in the order they were sent. */
  lane(): WebhookLane<P> {
    const pending: Array<() => Promise<void>> = [];
    let draining = false;
    return {
      send: (prepare) => {
        pending.push(() => this.deliver(prepare()));
        if (draining) return;
        draining = true;
        this.opts.bg.run(this.opts.task, async () => {
          try {
            for (let next = pending.shift(); next !== undefined; next = pending.shift()) await next();
          } finally {
            draining = false;
          }
        });
      },
    };
  }

  private async deliver<X extends object>(d: Delivery<P, X>): Promise<void> {
    const record = { ...d.fields, url: d.url, at: new Date().toISOString(), attempts: 0, ok: false, httpStatus: null, error: null } as X &
      DeliveryRecord;
    d.records.push(record);
    const res = await this.opts.client.post(this.request(d.url, d.payload), this.opts.policy);
    Object.assign(record, { attempts: res.attempts, ok: res.ok, httpStatus: res.status, error: res.error });
    if (!res.ok) this.opts.log.warn({ ...d.context, httpStatus: res.status, error: res.error, attempts: res.attempts }, this.opts.refused);
  }
}
