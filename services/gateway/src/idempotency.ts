/**
 * Idempotency-Key on POST routes (Stripe semantics, docs/reliability.md#idempotency-key):
 * - same key + same request → the stored first answer (header `Idempotent-Replayed: true`);
 * - same key + another request → 422 IDEMPOTENCY_KEY_REUSED;
 * - same key while the first is still running → 409 IDEMPOTENCY_IN_PROGRESS + Retry-After;
 * - keys are scoped per credential and kept 24 h; after that the key is new again.
 * A route that writes stores its answer in the same transaction as its rows
 * (`completeIdempotency`), so a crash can never leave rows without the answer that replays them.
 * A request that ends in an error without completing releases its key (nothing was written).
 * A key whose request died mid-flight (its lock expired) is taken over by the next request.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  completeIdempotencyKey,
  deleteExpiredIdempotencyKey,
  findIdempotencyKey,
  insertIdempotencyKey,
  releaseIdempotencyKey,
  takeOverIdempotencyKey,
  type Db,
  type Executor,
} from '@hatch/db';
import { HttpError } from './errors.js';

export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** how long a request may hold its key before another may take over (a crashed request) */
export const IDEMPOTENCY_LOCK_MS = 60_000;
/** an Idempotency-Key: 1 to 255 printable ASCII characters (also in the OpenAPI document) */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyContext {
  scope: string;
  key: string;
  completed: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    idempotency?: IdempotencyContext;
  }
  interface FastifyContextConfig {
    idempotent?: boolean;
  }
}

/**
 * Deeper than any body a route takes (a few levels): refused, not hashed. canonicalJson
 * recurses, and a 60 KB body nested 10,000 levels deep overflowed the stack: a 500 on the retry
 * route, whose body no schema checks (found by test/fuzz.test.ts).
 */
export const CANONICAL_JSON_MAX_DEPTH = 64;

/** Stable JSON (sorted keys) so the same body in another key order is the same request. */
export function canonicalJson(value: unknown, depth = 0): string {
  if (depth > CANONICAL_JSON_MAX_DEPTH)
    throw new HttpError('INVALID_REQUEST', `request body is nested more than ${CANONICAL_JSON_MAX_DEPTH} levels deep`);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, depth + 1)).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k], depth + 1)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function requestHash(req: FastifyRequest): string {
  return createHash('sha256')
    .update(`${req.method} ${req.routeOptions.url ?? req.url}\n${canonicalJson(req.params)}\n${canonicalJson(req.body ?? null)}`)
    .digest('hex');
}

/** Stores the answer with the route's own writes (same transaction). */
export async function completeIdempotency(ex: Executor, ctx: IdempotencyContext | undefined, status: number, body: unknown): Promise<void> {
  if (!ctx) return;
  await completeIdempotencyKey(ex, ctx.scope, ctx.key, status, body);
  ctx.completed = true;
}

type Begin = { kind: 'proceed'; ctx: IdempotencyContext } | { kind: 'replay'; status: number; body: unknown };

async function begin(db: Db, req: FastifyRequest, scope: string, key: string): Promise<Begin> {
  const hash = requestHash(req);
  const path = req.routeOptions.url ?? req.url;
  for (let attempt = 0; attempt < 3; attempt++) {
    const now = Date.now();
    const taken = await insertIdempotencyKey(db.db, {
      scope,
      key,
      method: req.method,
      path,
      request_hash: hash,
      state: 'in_progress',
      locked_until: new Date(now + IDEMPOTENCY_LOCK_MS),
      expires_at: new Date(now + IDEMPOTENCY_TTL_MS),
    });
    if (taken) return { kind: 'proceed', ctx: { scope, key, completed: false } };
    const row = await findIdempotencyKey(db.db, scope, key);
    if (!row) continue; // released meanwhile: try to take it again
    if (row.expires_at.getTime() <= now) {
      await deleteExpiredIdempotencyKey(db.db, scope, key, new Date(now));
      continue;
    }
    if (row.request_hash !== hash) {
      throw new HttpError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used with a different request', {
        details: [{ field: 'headers.idempotency-key', message: 'was used with another request body or path' }],
      });
    }
    if (row.state === 'completed') return { kind: 'replay', status: row.response_status ?? 200, body: row.response_body };
    if (row.locked_until && row.locked_until.getTime() > now) {
      throw new HttpError('IDEMPOTENCY_IN_PROGRESS', 'a request with this Idempotency-Key is still in progress', {
        headers: { 'retry-after': '1' },
      });
    }
    // The first request died while holding the key: take it over (one winner).
    if (await takeOverIdempotencyKey(db.db, scope, key, new Date(now + IDEMPOTENCY_LOCK_MS)))
      return { kind: 'proceed', ctx: { scope, key, completed: false } };
  }
  throw new HttpError('IDEMPOTENCY_IN_PROGRESS', 'a request with this Idempotency-Key is still in progress', {
    headers: { 'retry-after': '1' },
  });
}

/** Routes with `config: { idempotent: true }` honour the Idempotency-Key header. */
export function registerIdempotency(app: FastifyInstance, db: Db): void {
  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.routeOptions.config?.idempotent) return;
    const raw = req.headers['idempotency-key'];
    if (raw === undefined) return;
    const key = Array.isArray(raw) ? (raw[0] ?? '') : raw;
    if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
      throw new HttpError('INVALID_REQUEST', 'Idempotency-Key must be 1 to 255 printable ASCII characters', {
        details: [{ field: 'headers.idempotency-key', message: 'must be 1 to 255 printable ASCII characters' }],
      });
    }
    const result = await begin(db, req, req.principal ?? 'anonymous', key);
    if (result.kind === 'replay') {
      return reply.code(result.status).header('idempotent-replayed', 'true').send(result.body);
    }
    req.idempotency = result.ctx;
  });
  app.addHook('onResponse', async (req) => {
    const ctx = req.idempotency;
    if (ctx && !ctx.completed) {
      await releaseIdempotencyKey(db.db, ctx.scope, ctx.key).catch((err: unknown) =>
        req.log.warn({ err }, 'could not release an idempotency key'),
      );
    }
  });
}
