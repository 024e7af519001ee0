/**
 * The contract's error body for every failure: `{success:false, error, code, details?}`.
 * Input problems are 4xx naming the field; PostgreSQL unreachable is 503 + Retry-After; anything
 * else is a logged 500 with a generic message (never a stack trace to the client).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type ErrorBody, type ErrorCode, type ErrorDetail } from '@hatch/contracts';
import { isConnectionError } from '@hatch/db';

export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly details?: ErrorDetail[];
  readonly headers?: Record<string, string>;
  constructor(code: ErrorCode, message: string, opts: { details?: ErrorDetail[]; headers?: Record<string, string>; status?: number } = {}) {
    super(message);
    this.name = 'HttpError';
    this.code = code;
    this.statusCode = opts.status ?? ERROR_CODES[code];
    this.details = opts.details;
    this.headers = opts.headers;
  }
}

export function errorBody(code: string, error: string, details?: ErrorDetail[]): ErrorBody {
  return details && details.length ? { success: false, error, code, details } : { success: false, error, code };
}

/** Retry-After (seconds) on 503s while a dependency is down. */
export const DEPENDENCY_RETRY_AFTER_S = 2;

interface ValidationEntry {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** Turns schema-validation entries into `details` naming the fields, e.g. `body.to`. */
export function validationDetails(part: string, entries: ValidationEntry[]): ErrorDetail[] {
  const seen = new Set<string>();
  const out: ErrorDetail[] = [];
  for (const e of entries) {
    const p = e.params ?? {};
    const child = (p.requiredProperties as string[] | undefined)?.[0] ?? (p.missingProperty as string | undefined) ?? (p.additionalProperties as string[] | undefined)?.[0] ?? (p.additionalProperty as string | undefined);
    const path = `${e.instancePath ?? ''}${child ? `/${child}` : ''}`;
    const field = [part, ...path.split('/').filter(Boolean)].join('.');
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties' || e.keyword === 'boolean') message = 'is not a known field';
    if (e.keyword === 'required') message = 'is required';
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') message = 'has the wrong type';
    const key = `${field}|${message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push({ field, message });
    }
  }
  return out;
}

const FASTIFY_CODES: Record<string, { code: ErrorCode; message: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Type must be application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'INVALID_REQUEST', message: 'Content-Length does not match the body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', message: 'request body is too large' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'INVALID_REQUEST', message: 'request body must not be empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'INVALID_REQUEST', message: 'request body is not valid JSON' },
  FST_ERR_CTP_INVALID_TYPE: { code: 'INVALID_REQUEST', message: 'Content-Type header is invalid' },
};

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { validationContext?: string; headers?: Record<string, string> }, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof HttpError) {
      if (err.headers) void reply.headers(err.headers);
      return reply.code(err.statusCode).send(errorBody(err.code, err.message, err.details));
    }
    if (err.validation) {
      const part = err.validationContext ?? 'body';
      const details = validationDetails(part, err.validation as ValidationEntry[]);
      const first = details[0];
      return reply.code(400).send(errorBody('INVALID_REQUEST', first ? `${first.field} ${first.message}` : 'invalid request', details));
    }
    const known = err.code ? FASTIFY_CODES[err.code] : undefined;
    if (known) return reply.code(ERROR_CODES[known.code]).send(errorBody(known.code, known.message));
    // secure-json-parse refuses __proto__ / constructor.prototype keys (prototype poisoning).
    if (err instanceof SyntaxError || /prototype/i.test(err.message) && (err.statusCode ?? 400) === 400) {
      return reply.code(400).send(errorBody('INVALID_REQUEST', /prototype/i.test(err.message) ? 'request body contains a forbidden key (__proto__ or constructor.prototype)' : 'request body is not valid JSON'));
    }
    if (isConnectionError(err)) {
      req.log.warn({ err: { message: err.message, code: err.code } }, 'database unavailable');
      return reply.code(503).header('retry-after', String(DEPENDENCY_RETRY_AFTER_S)).send(errorBody('SERVICE_UNAVAILABLE', 'a dependency is unavailable; retry shortly'));
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = (Object.entries(ERROR_CODES).find(([, s]) => s === status)?.[0] ?? 'INVALID_REQUEST') as ErrorCode;
      if (err.headers) void reply.headers(err.headers);
      return reply.code(status).send(errorBody(code, err.message || 'invalid request'));
    }
    req.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('INTERNAL_ERROR', 'internal error'));
  });

  app.setNotFoundHandler(notFound);
}

/** 404 in the contract's shape (the root's and the `/api` plugin's not-found handler). */
export function notFound(req: FastifyRequest, reply: FastifyReply): void {
  const path = req.url.split('?')[0] ?? '/';
  void reply.code(404).send(errorBody('NOT_FOUND', `no route ${req.method} ${path}`));
}
