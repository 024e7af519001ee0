/**
 * HTTP/1.1 pipelining, one request at a time. Node's server parses every request a client
 * pipelined on a connection and runs them all at once, queueing only their answers; when one
 * answer closes the connection (Fastify closes it after a body it could not parse, since the
 * client may send more of it), the requests behind it have already run: a send stored, its
 * answer never sent. The fuzz test (test/fuzz.test.ts) found such rows. RFC 9112 §9.6: after an
 * answer with `Connection: close` the server "MUST NOT process any further requests received on
 * that connection"; §9.3.2 allows running pipelined requests in parallel only for safe methods.
 *
 * So a request pipelined behind an answer still going out waits for it (and for any others
 * ahead of it) and runs only if the connection stays open. A request alone on its connection,
 * the usual case, never waits: its own answer is the connection's current one. Nor does a
 * request run that arrives after an answer closed the connection for writing (a 413 answered
 * from the headers: Node reads on through the refused body and parses what follows).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { HttpError } from './errors.js';

/** Node's answer being written on a connection (internal, as Node's own clientError default reads it). */
const current = (socket: Socket): ServerResponse | null | undefined =>
  (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;

export function registerPipelineOrder(app: FastifyInstance): void {
  app.addHook('onRequest', (req, reply, done) => {
    const socket = req.raw.socket as Socket | null;
    const own = reply.raw;
    const notRun = () => done(new HttpError('INVALID_REQUEST', 'not run: an earlier answer on this pipelined connection closed it'));
    if (socket?.writableEnded) return notRun();
    // No answer ahead: Node made this one the connection's current answer (or it is not a
    // socket of Node's server at all: inject()).
    const first = socket ? current(socket) : undefined;
    if (!socket || !first || first === own) return done();
    let settled = false;
    const step = () => {
      if (settled) return;
      const ahead = current(socket);
      if (ahead === own) {
        settled = true;
        return done();
      }
      // Node hands the connection to the next queued answer when one finishes; none left means
      // the answer ahead closed it. This request is not run, and its answer is never sent.
      if (!ahead || socket.destroyed || socket.writableEnded) {
        settled = true;
        return notRun();
      }
      const next = () => {
        ahead.off('finish', next);
        ahead.off('close', next);
        step();
      };
      ahead.once('finish', next);
      ahead.once('close', next);
    };
    step();
  });
}
