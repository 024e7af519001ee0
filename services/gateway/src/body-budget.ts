/**
 * The request-body bytes being read at once, bounded per process (issue 14, "Slow and large
 * clients"): each route caps one body (64 KiB; send_email 28 MiB), but a few hundred slow
 * uploads to the email route could still hold gigabytes. A request with a body reserves what
 * it declares — its Content-Length, up to its route's body limit — before Fastify reads it
 * (preParsing: after authentication, so an unauthenticated client reserves nothing); a chunked
 * body reserves each chunk as it comes. Everything is given back when the response ends or the
 * connection closes. Past the budget the request is 503 + Retry-After, read no further.
 */
import { Transform } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import { retryLater } from './errors.js';

export const BODY_BUDGET_RETRY_AFTER_S = 1;

const overBudget = () =>
  retryLater('SERVICE_UNAVAILABLE', 'too many request bodies are being received at once; retry shortly', BODY_BUDGET_RETRY_AFTER_S);

export function registerBodyBudget(
  app: FastifyInstance,
  deps: { registry: Registry },
  opts: { maxBytes: number; defaultBodyLimit: number },
): void {
  let inFlight = 0;
  new Gauge({
    name: 'hatch_http_body_bytes_in_flight',
    help: 'request-body bytes reserved by requests being read or handled',
    registers: [deps.registry],
    collect() {
      this.set(inFlight);
    },
  });

  app.addHook('preParsing', async (req, reply, payload) => {
    let reserved = 0;
    // 'close' comes once for every response: finished, or its connection cut.
    const release = () => {
      inFlight -= reserved;
      reserved = 0;
    };
    const length = req.headers['content-length'];
    if (length !== undefined) {
      // Declared up front: reserved (up to the route's limit) before a byte is read.
      const n = Number(length);
      const limit = req.routeOptions.bodyLimit ?? opts.defaultBodyLimit;
      const bytes = Number.isSafeInteger(n) && n >= 0 ? Math.min(n, limit) : limit;
      if (bytes === 0) return payload;
      if (inFlight + bytes > opts.maxBytes) throw overBudget();
      inFlight += bytes;
      reserved = bytes;
      reply.raw.once('close', release);
      return payload;
    }
    if (req.headers['transfer-encoding'] === undefined) return payload;
    // Chunked: the size is not known, so each chunk is reserved as it arrives (the route's
    // body limit still ends it at its bound); past the budget the body is cut with a 503.
    reply.raw.once('close', release);
    return payload.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          if (inFlight + chunk.length > opts.maxBytes) return done(overBudget());
          inFlight += chunk.length;
          reserved += chunk.length;
          done(null, chunk);
        },
      }),
    );
  });
}
