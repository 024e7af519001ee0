/**
 * The SSE clients' frame scan: events of one type found whichever way the `event` field is
 * spelled (the gateway writes `event: x`, better-sse `event:x`), never in data or other names.
 */
import t from 'tap';
import { frameId, nextEventLine } from '../lib/sse-scan.js';

const count = (text: string, name: string) => {
  let n = 0;
  for (let i = nextEventLine(text, name); i !== -1; i = nextEventLine(text, name, i + 1)) n++;
  return n;
};

t.test('both spellings of the event field count', async (t) => {
  const gateway = 'id: 1\nevent: message_update\ndata: {"type":"message_update"}\n\nid: 2\nevent: message_update\ndata: {}\n';
  const betterSse = 'event:message_update\nid:1\ndata:{"type":"message_update"}\n\nevent:message_update\nid:2\ndata:{}\n';
  t.equal(count(gateway, 'message_update'), 2);
  t.equal(count(betterSse, 'message_update'), 2);
  t.equal(nextEventLine('event:message_update\n', 'message_update'), 0, 'at the very start');
});

t.test('the name in data, in another field or as a prefix of another event does not count', async (t) => {
  t.equal(count('data: message_update\n\n', 'message_update'), 0);
  t.equal(count('data: {"event": message_update\n\n', 'message_update'), 0);
  t.equal(count('event: message_update_v2\n\n', 'message_update'), 0);
  t.equal(count('event: other\n\n: event: message_update\n', 'message_update'), 0, 'a comment line is not the field');
  t.equal(count('xevent: message_update\n', 'message_update'), 0);
});

t.test('the frame id, before or after the event line', async (t) => {
  const text = 'id: 7\nevent: message_update\ndata: {}\n\nevent:message_update\nid:8\ndata:{}';
  const first = nextEventLine(text, 'message_update');
  const second = nextEventLine(text, 'message_update', first + 1);
  t.equal(frameId(text, first), '7');
  t.equal(frameId(text, second), '8', 'in the last, unterminated frame, after the event line');
  t.equal(frameId('event: message_update\ndata: {}', 0), undefined, 'a frame without an id');
  t.equal(frameId('id: 1\ndata: {}\n\nevent: message_update\n', 17), undefined, "another frame's id is not taken");
});
