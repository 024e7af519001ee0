/**
 * The contract's error body for every failure: `{success:false, error, code, details?}`.
 * Input problems are 4xx naming the field; PostgreSQL unreachable is 503 + Retry-After; anything
 * else is a logged 500 with a generic message (never a stack trace to the client).
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
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

/** A refusal the client should retry (429 / 503): the contract's error body plus Retry-After. */
export function retryLater(code: 'RATE_LIMITED' | 'SERVICE_UNAVAILABLE', message: string, retryAfterS: number): HttpError {
  return new HttpError(code, message, { headers: { 'retry-after': String(retryAfterS) } });
}

/** @fastify/rate-limit's `errorResponseBuilder`: 429 RATE_LIMITED + Retry-After in the contract's shape. */
export function rateLimitExceeded(_req: FastifyRequest, ctx: { max: number; ttl: number }): HttpError {
  const retryAfterS = Math.ceil(ctx.ttl / 1000);
  return retryLater('RATE_LIMITED', `rate limit of ${ctx.max} requests per minute exceeded; retry in ${retryAfterS} s`, retryAfterS);
}

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
    const child =
      (p.requiredProperties as string[] | undefined)?.[0] ??
      (p.missingProperty as string | undefined) ??
      (p.additionalProperties as string[] | undefined)?.[0] ??
      (p.additionalProperty as string | undefined);
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
  app.setErrorHandler(
    (err: FastifyError & { validationContext?: string; headers?: Record<string, string> }, req: FastifyRequest, reply: FastifyReply) => {
      if (err instanceof HttpError) {
        if (err.headers) void reply.headers(err.headers);
        return reply.code(err.statusCode).send(errorBody(err.code, err.message, err.details));
      }
      if (err.validation) {
        const part = err.validationContext ?? 'body';
        const details = validationDetails(part, err.validation);
        const first = details[0];
        return reply.code(400).send(errorBody('INVALID_REQUEST', first ? `${first.field} ${first.message}` : 'invalid request', details));
      }
      const known = err.code ? FASTIFY_CODES[err.code] : undefined;
      if (known) return reply.code(ERROR_CODES[known.code]).send(errorBody(known.code, known.message));
      // secure-json-parse refuses __proto__ / constructor.prototype keys (prototype poisoning).
      if (err instanceof SyntaxError || (/prototype/i.test(err.message) && (err.statusCode ?? 400) === 400)) {
        return reply
          .code(400)
          .send(
            errorBody(
              'INVALID_REQUEST',
              /prototype/i.test(err.message)
                ? 'request body contains a forbidden key (__proto__ or constructor.prototype)'
                : 'request body is not valid JSON',
            ),
          );
      }
      if (isConnectionError(err)) {
        req.log.warn({ err: { message: err.message, code: err.code } }, 'database unavailable');
        return reply
          .code(503)
          .header('retry-after', String(DEPENDENCY_RETRY_AFTER_S))
          .send(errorBody('SERVICE_UNAVAILABLE', 'a dependency is unavailable; retry shortly'));
      }
      const status = err.statusCode ?? 500;
      if (status >= 400 && status < 500) {
        const code = (Object.entries(ERROR_CODES).find(([, s]) => s === status)?.[0] ?? 'INVALID_REQUEST') as ErrorCode;
        if (err.headers) void reply.headers(err.headers);
        return reply.code(status).send(errorBody(code, err.message || 'invalid request'));
      }
      req.log.error({ err }, 'unhandled error');
      return reply.code(500).send(errorBody('INTERNAL_ERROR', 'internal error'));
    },
  );

  app.setNotFoundHandler(notFound);

  // A plugin that answers an error itself, past the error handler, uses its own shape:
  // @fastify/sse's 406 for an Accept that refuses event streams was `{statusCode, error,
  // message}` (found by test/fuzz.test.ts). Such a body is put in the contract's shape.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (
      reply.statusCode < 400 ||
      typeof payload !== 'string' ||
      payload.startsWith('{"success":false') ||
      !/json/i.test(String(reply.getHeader('content-type') ?? ''))
    )
      return payload;
    let body: unknown;
    try {
      body = JSON.parse(payload);
    } catch {
      return payload;
    }
    const b = (body ?? {}) as { success?: unknown; message?: unknown; error?: unknown; statusCode?: unknown };
    // Only Fastify's own error shape ({statusCode, error, message}): other JSON answers with an
    // error status are the route's own and stay as they are (/readyz's 503 report).
    if (b.success === false || typeof b.statusCode !== 'number' || typeof b.error !== 'string') return payload;
    const code = (Object.entries(ERROR_CODES).find(([, s]) => s === reply.statusCode)?.[0] ??
      (reply.statusCode >= 500 ? 'INTERNAL_ERROR' : 'INVALID_REQUEST')) as ErrorCode;
    const message = typeof b.message === 'string' ? b.message : typeof b.error === 'string' ? b.error : 'request refused';
    return JSON.stringify(errorBody(code, message));
  });
}

/** 404 in the contract's shape (the root's and the `/api` plugin's not-found handler). */
export function notFound(req: FastifyRequest, reply: FastifyReply): void {
  const path = req.url.split('?')[0] ?? '/';
  void reply.code(404).send(errorBody('NOT_FOUND', `no route ${req.method} ${path}`));
}

/**
 * Fastify's `frameworkErrors`: what fails before routing is in the contract's error shape too.
 * A request target with malformed percent-encoding (`/api/%zz`, FST_ERR_BAD_URL) got Fastify's
 * own `{error, code, message, statusCode}` (found by test/fuzz.test.ts).
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_BAD_URL') {
    void reply.code(400).send(errorBody('INVALID_REQUEST', 'the request target is not a valid URL (malformed percent-encoding)'));
    return;
  }
  req.log.error({ err }, 'framework error');
  void reply.code(500).send(errorBody('INTERNAL_ERROR', 'internal error'));
}

/**
 * Fastify's `clientErrorHandler`: a request Node's HTTP parser refuses before any route runs (a
 * malformed request line or header, duplicate Content-Length, Content-Length with chunked,
 * headers past 16 KiB, a request not received in time) is answered in the contract's error shape
 * too. Fastify's default answers `{error, message, statusCode}` (found by the fuzz test,
 * test/fuzz.test.ts). Then the connection is closed: the parser cannot resume after such an error.
 * While an earlier, complete request on the connection is still being answered (pipelining, or
 * a body longer than its Content-Length whose excess parses as a broken next request), that
 * answer goes out first and the connection closes after it, with no 400: written now, the 400
 * would be read as the earlier request's answer (Node's own default has that flaw), and
 * destroying the socket at once would drop an answer whose request may already have changed
 * something. When the request being read is itself the broken one (its body cut short, or not
 * received in time), the 400 / 408 is its answer.
 */
const closing = new WeakSet<Socket>();

export function clientErrorHandler(this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || closing.has(socket)) return;
  closing.add(socket);
  const [status, code, message]: [number, ErrorCode, string] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'REQUEST_TIMEOUT', 'the request was not received in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HEADERS_TOO_LARGE', 'request headers are too large']
        : [400, 'INVALID_REQUEST', 'malformed HTTP request'];
  this.log.debug({ err: { message: err.message, code: err.code } }, 'client error');
  // Node's in-flight response on this socket (internal, as in Node's own default handler); once
  // it finishes, Node hands the socket to the next pipelined answer, if any.
  const inFlight = () => (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  const current = inFlight();
  if (current && !current.writableFinished && current.req.complete) {
    socket.pause(); // nothing more is read: the parser is done
    const closeAfterAnswers = () => {
      const next = inFlight();
      if (next && !next.writableFinished) next.once('finish', closeAfterAnswers);
      else socket.destroy();
    };
    current.once('finish', closeAfterAnswers);
    return;
  }
  if (socket.writable && !current?.headersSent) {
    const body = JSON.stringify(errorBody(code, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
