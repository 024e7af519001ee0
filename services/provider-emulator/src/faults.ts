/**
 * Fault injection (issue 4; docs/reliability.md#the-harness): a fault makes the next N
 * matching requests of one provider misbehave, or changes how an accepted message ends.
 *
 *   429    not processed; Twilio 20429 + Retry-After / SendGrid 429 + X-RateLimit-Reset
 *   500    Twilio 20500 / SendGrid 500; `accepted: true` processes it first (the ambiguous case)
 *   503    as 500 with Twilio 20503 / SendGrid 503 (and Retry-After when given)
 *   hang   processed, then the answer is held for `hangMs` (a client timeout: outcome unknown)
 *   drop   processed, then the socket is destroyed without an answer (connection reset)
 *   error  a permanent refusal: Twilio error `code` (21211, 21610, …) / SendGrid status `code`
 *          (400, 403, 413); with `delivery` instead: accepted, and the callbacks / events end
 *          in that outcome (Twilio undelivered/failed with ErrorCode `code`; SendGrid
 *          bounce/dropped/deferred)
 *
 * `delivery` also combines with drop, hang and accepted 500/503. Faults apply to message
 * creation (Twilio) and mail send (SendGrid) only, after authentication and validation, so a
 * fault never hides a malformed request. The first active fault that matches wins.
 *
 * The answer to a processed request goes out through answerProcessed, ONE place for what drop,
 * hang and an accepted 500/503 do to the connection; what the answer says (error body, status,
 * headers) is the provider's, passed in.
 */
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Background } from './background.js';

export const FaultSpec = Type.Object(
  {
    provider: Type.Enum(['twilio', 'sendgrid']),
    kind: Type.Enum(['429', '500', '503', 'hang', 'drop', 'error']),
    /** how many matching requests it applies to; unlimited until reset when omitted */
    count: Type.Optional(Type.Integer({ minimum: 1 })),
    /** only requests to this recipient (Twilio `To`; SendGrid any to/cc/bcc address) */
    match: Type.Optional(Type.Object({ to: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false })),
    retryAfterSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
    hangMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    /** Twilio error code (21211, 21610, 30003…) or SendGrid HTTP status (400, 403, 413) */
    code: Type.Optional(Type.Integer({ minimum: 1 })),
    /** HTTP status override for a Twilio `error` (derived from the code otherwise) */
    status: Type.Optional(Type.Integer({ minimum: 400, maximum: 599 })),
    message: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    /** 500 / 503: process the request before answering the error (default false) */
    accepted: Type.Optional(Type.Boolean()),
    delivery: Type.Optional(Type.Enum(['undelivered', 'failed', 'bounce', 'dropped', 'deferred'])),
  },
  { additionalProperties: false },
);
export type FaultSpec = Static<typeof FaultSpec>;
export type Provider = FaultSpec['provider'];
export type FaultKind = FaultSpec['kind'];
export type DeliveryOutcome = NonNullable<FaultSpec['delivery']>;

export interface Fault extends FaultSpec {
  id: string;
  /** matching requests left; null = unlimited */
  remaining: number | null;
  /** times applied so far */
  applied: number;
  createdAt: string;
}

/** What a record keeps of the fault that shaped it. */
export interface AppliedFault {
  id: string;
  kind: FaultKind;
  code?: number;
  delivery?: DeliveryOutcome;
}

export class FaultError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid fault: ${problems.join('; ')}`);
    this.name = 'FaultError';
  }
}

const DELIVERY_BY_PROVIDER: Record<Provider, readonly DeliveryOutcome[]> = {
  twilio: ['undelivered', 'failed'],
  sendgrid: ['bounce', 'dropped', 'deferred'],
};

/** Schema check plus the rules a schema cannot say; throws FaultError naming every problem. */
export function parseFaultSpec(input: unknown): FaultSpec {
  if (!Value.Check(FaultSpec, input)) {
    const problems = [...Value.Errors(FaultSpec, input)]
      // an unknown field is reported twice (once per field, once as a summary): keep the first
      .filter((e) => e.keyword !== 'additionalProperties')
      .map(
        (e) => `${e.instancePath.slice(1).replace(/\//g, '.') || 'fault'}: ${e.keyword === 'boolean' ? 'is not a known field' : e.message}`,
      );
    throw new FaultError(problems.length ? [...new Set(problems)] : ['does not match the fault schema']);
  }
  const spec = input;
  const problems: string[] = [];
  if (spec.delivery && !DELIVERY_BY_PROVIDER[spec.provider].includes(spec.delivery)) {
    problems.push(`delivery: ${spec.provider} outcomes are ${DELIVERY_BY_PROVIDER[spec.provider].join(', ')}`);
  }
  if (spec.kind === 'error' && spec.code === undefined && spec.delivery === undefined) {
    problems.push('code: an error fault needs a code (Twilio error code or SendGrid status) or a delivery outcome');
  }
  if (
    spec.kind === 'error' &&
    spec.provider === 'sendgrid' &&
    spec.code !== undefined &&
    spec.delivery === undefined &&
    (spec.code < 400 || spec.code > 599)
  ) {
    problems.push('code: a SendGrid error code is the HTTP status, 400–599');
  }
  if (spec.accepted !== undefined && spec.kind !== '500' && spec.kind !== '503') {
    problems.push('accepted: only 500 and 503 faults choose it (429 is never processed; hang and drop always are)');
  }
  if (spec.delivery && spec.kind === '429') problems.push('delivery: a 429 is never processed, so it has no delivery');
  if (spec.delivery && (spec.kind === '500' || spec.kind === '503') && spec.accepted !== true) {
    problems.push('delivery: a 500/503 fault only delivers with accepted: true');
  }
  if (problems.length) throw new FaultError(problems);
  return spec;
}

/** Does the fault's `match` select this request? Addresses compare case-insensitively. */
function matches(fault: Fault, recipients: readonly string[]): boolean {
  const to = fault.match?.to;
  if (to === undefined) return true;
  const want = to.toLowerCase();
  return recipients.some((r) => r.toLowerCase() === want);
}

export class FaultStore {
  private faults: Fault[] = [];

  add(spec: FaultSpec): Fault {
    const fault: Fault = { ...spec, id: randomUUID(), remaining: spec.count ?? null, applied: 0, createdAt: new Date().toISOString() };
    this.faults.push(fault);
    return fault;
  }

  /** The first active fault of `provider` matching one of `recipients`, consuming one use. */
  take(provider: Provider, recipients: readonly string[]): Fault | undefined {
    if (this.faults.length === 0) return undefined;
    const fault = this.faults.find((f) => f.provider === provider && matches(f, recipients));
    if (!fault) return undefined;
    fault.applied++;
    if (fault.remaining !== null) {
      fault.remaining--;
      if (fault.remaining === 0) this.faults = this.faults.filter((f) => f !== fault);
    }
    return { ...fault };
  }

  list(provider?: Provider): Fault[] {
    return this.faults.filter((f) => provider === undefined || f.provider === provider).map((f) => ({ ...f }));
  }

  reset(provider?: Provider): void {
    this.faults = provider === undefined ? [] : this.faults.filter((f) => f.provider !== provider);
  }
}

export function appliedFault(f: Fault | undefined): AppliedFault | null {
  if (!f) return null;
  return { id: f.id, kind: f.kind, ...(f.code !== undefined ? { code: f.code } : {}), ...(f.delivery ? { delivery: f.delivery } : {}) };
}

/**
 * Is the request processed (the message or email exists, callbacks / events follow) despite
 * the fault? Always for hang, drop and delivery faults; for 500/503 only with `accepted`.
 */
export function processedDespite(f: Fault | undefined): boolean {
  if (f === undefined) return true;
  if (f.kind === 'hang' || f.kind === 'drop') return true;
  if (f.kind === 'error') return f.delivery !== undefined;
  return f.accepted === true;
}

/** A provider's answers to a request it processed; each records the status it answers. */
export interface ProcessedAnswers {
  /** the error of an accepted 500 or 503 fault */
  error(f: Fault): FastifyReply;
  /** the provider's success answer (also under hang, once held, and under a delivery fault) */
  ok(): FastifyReply;
}

/**
 * Answers a request that was processed despite its fault (processedDespite). drop: the
 * connection dies without an answer, so the caller cannot know the request was accepted
 * (docs/reliability.md#twilio). hang: the answer is held for `hangMs`; if the emulator stops meanwhile
 * the connection is destroyed instead, so stop() never waits out a hang. An accepted 500/503
 * answers its error; anything else succeeds.
 */
export async function answerProcessed(
  fault: Fault | undefined,
  req: FastifyRequest,
  reply: FastifyReply,
  bg: Background,
  answers: ProcessedAnswers,
): Promise<FastifyReply> {
  if (fault?.kind === 'drop') return withhold(req, reply);
  if (fault?.kind === 'hang') {
    try {
      await bg.sleep(fault.hangMs ?? 30_000);
    } catch {
      return withhold(req, reply); // shutting down
    }
  }
  if (fault?.kind === '500' || fault?.kind === '503') return answers.error(fault);
  return answers.ok();
}

/** No answer at all: the socket is destroyed under the client (a connection reset). */
function withhold(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply.hijack();
  req.raw.socket.destroy();
  return reply;
}

/** Which recipients of a request the fault's delivery outcome applies to. */
export function faultSelects(f: Fault, recipient: string): boolean {
  return f.match?.to === undefined || f.match.to.toLowerCase() === recipient.toLowerCase();
}
