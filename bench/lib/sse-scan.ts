/**
 * Finding SSE frames of one event type in a received byte stream, without a parser (the bench's
 * SSE clients scan thousands of streams). The field may be written `event: name` or `event:name`
 * (both are valid SSE: one leading space of the value is optional; better-sse omits it).
 */

/** Index of the next `event:` line naming `name` that starts at or after `from`, or -1. */
export function nextEventLine(text: string, name: string, from = 0): number {
  const tail = `${name}\n`;
  let i = text.indexOf(tail, from);
  while (i !== -1) {
    for (const field of ['event: ', 'event:']) {
      const at = i - field.length;
      if (at >= from && text.startsWith(field, at) && (at === 0 || text[at - 1] === '\n')) return at;
    }
    i = text.indexOf(tail, i + tail.length);
  }
  return -1;
}

/** The `id` field of the frame holding the event line at `at` (looked for before it within the frame), or undefined. */
export function frameId(text: string, at: number): string | undefined {
  const start = text.lastIndexOf('\n\n', at) + 1; // 0 when the frame starts the text
  const frame = text.slice(start, text.indexOf('\n\n', at) === -1 ? undefined : text.indexOf('\n\n', at));
  const m = /(?:^|\n)id: ?([^\n]*)/.exec(frame);
  return m ? m[1] : undefined;
}
