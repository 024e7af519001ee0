/** A small SSE reader for tests (Node 20 has no EventSource): raw frames, parsed events, comments. */
import http from 'node:http';
import { waitFor } from '@hatch/testing';

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

export interface SseClient {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: SseEvent[];
  comments: string[];
  retry?: number;
  ended(): boolean;
  /** events of one name, parsed data */
  of<T = Record<string, unknown>>(name: string): Array<T & { _id?: string }>;
  waitFor(cond: (c: SseClient) => boolean, timeoutMs?: number, message?: string): Promise<void>;
  /** stop reading: the server's writes back up into the kernel buffers, then its queue */
  pause(): void;
  resume(): void;
  close(): void;
}

/** `onEvent`: called for each event as it is parsed (not for comments: EventSource cannot see them). */
export function openSse(url: string, headers: Record<string, string> = {}, onEvent?: (e: SseEvent) => void): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let buf = '';
      let done = false;
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events: [],
        comments: [],
        ended: () => done,
        of: <T>(name: string) => client.events.filter((e) => e.event === name).map((e) => ({ ...(JSON.parse(e.data) as T), _id: e.id })),
        waitFor: (cond, timeoutMs = 15_000, message) => waitFor(() => cond(client), { timeoutMs, message }),
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => {
          req.destroy();
        },
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev: SseEvent = { event: 'message', data: '' };
          let hasData = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) client.comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) ev.id = line.slice(4);
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) {
              ev.data += (hasData ? '\n' : '') + line.slice(6);
              hasData = true;
            } else if (line.startsWith('retry: ')) client.retry = Number(line.slice(7));
          }
          if (hasData) {
            client.events.push(ev);
            onEvent?.(ev);
          }
        }
      });
      const end = () => (done = true);
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
      resolve(client);
    });
    req.on('error', reject);
  });
}
