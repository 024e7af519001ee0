/**
 * A raw HTTP/1.1 client over a TCP socket: the request target and headers go out byte for byte
 * as given. Security tests use it because `inject()` and `fetch` normalise the target (percent
 * encoding, dot segments, absolute form) and would hide exactly what an attacker sends.
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
  headers?: Record<string, string>;
  body?: string;
  /** give up after this long (a stream that never ends: the head and what came in that time) */
  timeoutMs?: number;
}

/** Sends one request with `Connection: close`; resolves with the head and what body came. */
export function rawRequest(port: number, req: RawRequest): Promise<RawResponse> {
  const headers: Record<string, string> = { host: `127.0.0.1:${port}`, connection: 'close', ...req.headers };
  if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
  const head = `${req.method} ${req.target} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), req.timeoutMs ?? 3000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // A live event stream never ends: its head is the answer.
      if (/content-type: text\/event-stream/i.test(Buffer.concat(chunks).toString('latin1'))) socket.destroy();
    });
    socket.on('error', (err) => {
      if (chunks.length === 0) {
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      const lines = (end < 0 ? text : text.slice(0, end)).split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
      // Nothing in time (a stream held open without a head) or garbage: status 0, the caller decides.
      if (!m) return resolve({ status: 0, headers: {}, body: text });
      const out: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), headers: out, body: end < 0 ? '' : text.slice(end + 4) });
    });
    socket.write(head + (req.body ?? ''));
  });
}
