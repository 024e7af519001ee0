/**
 * A raw HTTP/1.1 client over a TCP socket: the request target and headers go out byte for byte
 * as given. Security tests use it because `inject()` and `fetch` normalise the target (percent
 * encoding, dot segments, absolute form) and would hide exactly what an attacker sends. It can
 * also lie: a Content-Length that is not the body's, a chunked body, repeated header lines, a
 * request cut short, several requests pipelined on one keep-alive connection.
 */
import net from 'node:net';

export interface RawResponse {
  /** 0: no HTTP answer before the socket closed or the timeout */
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawRequest {
  method: string;
  target: string;
  /** sent after `host` and `connection` (which they may replace); a null value leaves the header out */
  headers?: Record<string, string | null>;
  /** header lines sent after `headers`, as given: repeated names, odd spellings */
  rawHeaders?: Array<[string, string]>;
  /** a string goes out UTF-8 encoded; a Buffer as it is (invalid UTF-8 and all) */
  body?: string | Buffer;
  /** the Content-Length to send instead of the body's length (a lie), or null to send none */
  contentLength?: string | null;
  /** the body in these chunks with `Transfer-Encoding: chunked` (and no Content-Length) */
  chunks?: Array<string | Buffer>;
  /** end the client's side of the connection after the request: a body shorter than its Content-Length ends there */
  halfClose?: boolean;
  /** give up after this long (a stream that never ends: the head and what came in that time) */
  timeoutMs?: number;
  /** connect from this local address (another client: any 127.x.y.z reaches a server on 127.0.0.1) */
  localAddress?: string;
}

/** The request's bytes; `connection` is the default Connection header. */
export function encodeRequest(port: number, req: RawRequest, connection = 'close'): Buffer {
  const headers: Record<string, string | null> = { host: `127.0.0.1:${port}`, connection, ...req.headers };
  const body = req.chunks
    ? Buffer.concat([
        ...req.chunks
          .filter((c) => c.length > 0)
          .map((c) => {
            const b = Buffer.from(c);
            return Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
          }),
        Buffer.from('0\r\n\r\n'),
      ])
    : req.body === undefined
      ? undefined
      : Buffer.from(req.body);
  if (req.chunks) headers['transfer-encoding'] = 'chunked';
  else if (req.contentLength !== undefined) headers['content-length'] = req.contentLength;
  else if (body !== undefined) headers['content-length'] = String(body.length);
  const lines = [...Object.entries(headers).filter((e): e is [string, string] => e[1] !== null), ...(req.rawHeaders ?? [])];
  const head = `${req.method} ${req.target} HTTP/1.1\r\n${lines.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return body ? Buffer.concat([Buffer.from(head), body]) : Buffer.from(head);
}

/**
 * Splits what a server sent into responses: interim 1xx answers skipped, bodies framed by
 * Content-Length or chunked encoding (none for HEAD, 204, 304), else the rest of the bytes.
 * A response cut short keeps what came. `methods` are the requests' methods, in order.
 */
export function parseResponses(data: Buffer, methods: string[]): RawResponse[] {
  return parse(data, methods).responses;
}

/** `complete`: every request has its whole answer (the connection may stay open: keep-alive). */
function parse(data: Buffer, methods: string[]): { responses: RawResponse[]; complete: boolean } {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < data.length && out.length < methods.length) {
    const end = data.indexOf('\r\n\r\n', pos, 'latin1');
    const lines = data
      .subarray(pos, end < 0 ? data.length : end)
      .toString('utf8')
      .split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    // Nothing in time (a stream held open without a head) or garbage: status 0, the caller decides.
    if (!m) {
      out.push({ status: 0, headers: {}, body: data.subarray(pos).toString('utf8') });
      return { responses: out, complete: false };
    }
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    if (end < 0) {
      out.push({ status, headers, body: '' });
      return { responses: out, complete: false };
    }
    pos = end + 4;
    if (status >= 100 && status < 200) continue;
    const method = methods[out.length] ?? 'GET';
    let body: Buffer = Buffer.alloc(0);
    let whole = true;
    if (method === 'HEAD' || status === 204 || status === 304) {
      // no body
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      whole = false;
      for (;;) {
        const eol = data.indexOf('\r\n', pos, 'latin1');
        if (eol < 0) {
          pos = data.length;
          break;
        }
        const size = parseInt(data.subarray(pos, eol).toString('latin1'), 16);
        if (!(size > 0)) {
          // the last chunk (and no trailers) or a malformed size: the body ends here
          const trailerEnd = data.indexOf('\r\n\r\n', eol, 'latin1');
          whole = trailerEnd >= 0;
          pos = trailerEnd < 0 ? data.length : trailerEnd + 4;
          break;
        }
        parts.push(data.subarray(eol + 2, Math.min(eol + 2 + size, data.length)));
        pos = Math.min(eol + 2 + size + 2, data.length);
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined && /^\d+$/.test(headers['content-length'])) {
      const n = Number(headers['content-length']);
      body = data.subarray(pos, pos + n);
      whole = pos + n <= data.length;
      pos = Math.min(pos + n, data.length);
    } else {
      // framed by the end of the connection: whole only once it closed
      body = data.subarray(pos);
      pos = data.length;
      whole = false;
    }
    out.push({ status, headers, body: body.toString('utf8') });
    if (!whole) return { responses: out, complete: false };
  }
  return { responses: out, complete: out.length === methods.length };
}

interface Exchange {
  data: Buffer;
  /** the socket failed before anything came back */
  error?: Error;
}

/**
 * Writes `bytes` and collects the answers to `methods` until the server closes the connection,
 * every answer is whole (a keep-alive connection: then we close it), or the timeout.
 */
function exchange(
  port: number,
  bytes: Buffer,
  methods: string[],
  opts: { halfClose?: boolean; timeoutMs?: number; localAddress?: string },
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
    const chunks: Buffer[] = [];
    let seen = '';
    const timer = setTimeout(() => socket.destroy(), opts.timeoutMs ?? 3000);
    let error: Error | undefined;
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // A live event stream never ends: its head is the answer.
      seen = (seen + c.toString('latin1')).slice(-64 * 1024);
      if (/content-type: text\/event-stream/i.test(seen)) socket.destroy();
      else if (parse(Buffer.concat(chunks), methods).complete) socket.destroy();
    });
    // A reset after the answer (the server closed while we were still sending) keeps the answer.
    socket.on('error', (err) => {
      if (chunks.length === 0) error = err;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), error });
    });
    socket.write(bytes);
    if (opts.halfClose) socket.end();
  });
}

/** Sends one request (by default with `Connection: close`); resolves with the head and what body came. */
export async function rawRequest(port: number, req: RawRequest): Promise<RawResponse> {
  const { data, error } = await exchange(port, encodeRequest(port, req), [req.method], req);
  if (error) throw error;
  return parseResponses(data, [req.method])[0] ?? { status: 0, headers: {}, body: '' };
}

/**
 * Sends `reqs` pipelined in one write on one keep-alive connection (the last one says
 * `Connection: close`); resolves with the answers in order, as many as came.
 */
export async function rawPipeline(
  port: number,
  reqs: RawRequest[],
  opts: { timeoutMs?: number; halfClose?: boolean } = {},
): Promise<RawResponse[]> {
  const bytes = Buffer.concat(reqs.map((r, i) => encodeRequest(port, r, i === reqs.length - 1 ? 'close' : 'keep-alive')));
  const methods = reqs.map((r) => r.method);
  const { data, error } = await exchange(port, bytes, methods, opts);
  if (error) throw error;
  return parseResponses(data, methods);
}
