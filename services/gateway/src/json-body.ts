/**
 * The JSON body parser of every route (the SendGrid webhook's scope keeps the raw bytes and
 * parses them itself): Fastify's own (secure-json-parse, prototype poisoning refused) plus one
 * rule, strings are valid Unicode. JSON can escape a lone UTF-16 surrogate (`"\ud800"`), which
 * is no character: PostgreSQL refuses it in json / jsonb, and the batch insert of sends passes
 * its rows as JSON (a 500, found by test/fuzz.test.ts); UTF-8 cannot encode it either (a text
 * column would silently get U+FFFD). I-JSON (RFC 7493 §2.1) forbids them, and so does the
 * gateway: 400, for every field of every route at once.
 */
import type { FastifyInstance } from 'fastify';
import { hasLoneSurrogate as stringHasLoneSurrogate } from '@hatch/contracts';
import { HttpError } from './errors.js';

/** Cheap test on the raw text: only a body with a surrogate escape can hold a lone one (raw bytes decode to U+FFFD). */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** Whether any string (key or value) in a parsed JSON value holds a lone surrogate; iterative, so deep nesting cannot overflow the stack. */
export function hasLoneSurrogate(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (stringHasLoneSurrogate(v)) return true;
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (stringHasLoneSurrogate(k)) return true;
        stack.push(x);
      }
    }
  }
  return false;
}

export function registerJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    void parse(req, body as string, (err, value) => {
      if (err) return done(err, undefined);
      if (SURROGATE_ESCAPE.test(body as string) && hasLoneSurrogate(value)) {
        return done(
          new HttpError('INVALID_REQUEST', 'request body is not valid Unicode: a string holds a lone surrogate escape such as \\ud800'),
          undefined,
        );
      }
      done(null, value);
    });
  });
}
