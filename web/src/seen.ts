/** Unread markers: per conversation, the activity time this browser last looked at. */
const KEY = 'hatch:seen';

function load(): Record<string, string> {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? '{}') as Record<string, string>;
  } catch {
    return {};
  }
}

export function lastSeen(conversationId: string): string | undefined {
  return load()[conversationId];
}

export function markSeen(conversationId: string, at: string): void {
  const all = load();
  if ((all[conversationId] ?? '') >= at) return;
  all[conversationId] = at;
  // Bounded: keep the 500 most recently active entries.
  const entries = Object.entries(all)
    .sort((a, b) => (a[1] < b[1] ? 1 : -1))
    .slice(0, 500);
  localStorage.setItem(KEY, JSON.stringify(Object.fromEntries(entries)));
}
