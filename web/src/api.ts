/**
 * The gateway's HTTP API as the UI uses it (docs/api.md). Types come from the shared
 * contracts, so a changed response shape is a compile error here too. The session cookie rides
 * along automatically (same origin); a 401 anywhere sends the window back to the login screen.
 */
import type {
  AcceptInviteBody,
  AuditPage,
  ConversationPage,
  CreatedToken,
  CreateTokenBody,
  CreateUserBody,
  InviteLink,
  SessionList,
  TokenList,
  UpdateUserBody,
  User,
  UserPage,
  Whoami,
  EmailPage,
  EmailWithTimeline,
  ErrorBody,
  ErrorDetail,
  MessagePage,
  MessageWithTimeline,
  RetryResponse,
  SendEmailBody,
  SendEmailResponse,
  SendMessageBody,
  SendMessageResponse,
  SessionBody,
} from '@hatch/contracts';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  /** seconds, from a 429's or 503's Retry-After */
  readonly retryAfterS: number | undefined;
  constructor(status: number, body: Partial<ErrorBody> | undefined, retryAfter?: string | null) {
    super(body?.error ?? (status === 0 ? 'Cannot reach Hatch: check your connection' : `Request failed (${status})`));
    this.name = 'ApiError';
    this.status = status;
    this.code = body?.code ?? (status === 0 ? 'NETWORK_ERROR' : 'HTTP_ERROR');
    this.details = body?.details ?? [];
    const secs = retryAfter ? Number(retryAfter) : NaN;
    this.retryAfterS = Number.isFinite(secs) && secs >= 0 ? Math.ceil(secs) : undefined;
  }
  /** The first detail whose field ends with `.name` (e.g. `body.to` for `to`), else undefined. */
  fieldMessage(name: string): string | undefined {
    return this.details.find((d) => fieldOf(d.field) === name)?.message;
  }
}

/** `body.cc.1` / `/cc/1` / `cc` → `cc`: the form field a detail belongs to. */
export function fieldOf(path: string): string {
  const parts = path.split(/[./]/).filter((p) => p && p !== 'body' && !/^\d+$/.test(p));
  return parts[0] ?? '';
}

/**
 * Who is signed in, and any route's "sent by" as the API returns it (`sent_by: {id, name}`; null
 * for rows from before accounts, or a provider/worker source; "API" is the bootstrap token).
 */
export interface SentBy {
  id: string | null;
  name: string;
}
export type WithSender<T> = T & { sent_by?: SentBy | null };
export function senderName(row: { sent_by?: SentBy | null }): string | undefined {
  const name = row.sent_by?.name;
  return typeof name === 'string' && name.trim() ? name : undefined;
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();
export function onUnauthorized(fn: Listener): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

/** An Idempotency-Key. crypto.randomUUID needs a secure context; getRandomValues does not. */
export function newIdempotencyKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function request<T>(
  method: string,
  path: string,
  opts: { body?: unknown; idempotencyKey?: string; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      credentials: 'same-origin',
      signal: opts.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, undefined);
  }
  if (res.status === 204) return undefined as T;
  let parsed: unknown;
  try {
    parsed = await res.json();
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    // A sign-in or an invite answering 401 is a wrong password or link, not an ended session.
    if (res.status === 401 && !UNAUTHENTICATED.has(`${method} ${path}`)) for (const fn of unauthorizedListeners) fn();
    throw new ApiError(res.status, parsed as Partial<ErrorBody> | undefined, res.headers.get('retry-after'));
  }
  return parsed as T;
}

/** The routes a signed-out window calls: their 401 is an answer to show, not a signal to sign out. */
const UNAUTHENTICATED = new Set(['POST /api/session', 'POST /api/invites/accept']);

const page = (limit: number, before?: string | null) => `limit=${limit}${before ? `&before=${encodeURIComponent(before)}` : ''}`;

export const api = {
  login: (token: string) => request<void>('POST', '/api/session', { body: { token } satisfies SessionBody }),
  signIn: (email: string, password: string) => request<void>('POST', '/api/session', { body: { email, password } satisfies SessionBody }),
  logout: () => request<void>('DELETE', '/api/session'),
  whoami: () => request<Whoami>('GET', '/api/session'),
  sessions: () => request<SessionList>('GET', '/api/sessions'),
  endSession: (id: string) => request<void>('DELETE', `/api/sessions/${encodeURIComponent(id)}`),
  tokens: () => request<TokenList>('GET', '/api/tokens'),
  createToken: (body: CreateTokenBody) => request<CreatedToken>('POST', '/api/tokens', { body }),
  revokeToken: (id: string) => request<void>('DELETE', `/api/tokens/${encodeURIComponent(id)}`),
  users: (limit: number, before?: string | null) => request<UserPage>('GET', `/api/users?${page(limit, before)}`),
  invite: (body: CreateUserBody) => request<InviteLink>('POST', '/api/users', { body }),
  updateUser: (id: string, body: UpdateUserBody) => request<User>('PATCH', `/api/users/${encodeURIComponent(id)}`, { body }),
  resetUser: (id: string) => request<InviteLink>('POST', `/api/users/${encodeURIComponent(id)}/reset`),
  userSessions: (id: string) => request<SessionList>('GET', `/api/users/${encodeURIComponent(id)}/sessions`),
  endUserSession: (id: string, sessionId: string) =>
    request<void>('DELETE', `/api/users/${encodeURIComponent(id)}/sessions/${encodeURIComponent(sessionId)}`),
  userTokens: (id: string) => request<TokenList>('GET', `/api/users/${encodeURIComponent(id)}/tokens`),
  revokeUserToken: (id: string, tokenId: string) =>
    request<void>('DELETE', `/api/users/${encodeURIComponent(id)}/tokens/${encodeURIComponent(tokenId)}`),
  acceptInvite: (body: AcceptInviteBody) => request<void>('POST', '/api/invites/accept', { body }),
  audit: (q: { limit: number; before?: string | null; userId?: string; kind?: string }) => {
    const qs = new URLSearchParams({ limit: String(q.limit) });
    if (q.before) qs.set('before', q.before);
    if (q.userId) qs.set('user_id', q.userId);
    if (q.kind) qs.set('kind', q.kind);
    return request<AuditPage>('GET', `/api/audit?${qs.toString()}`);
  },
  conversations: (limit: number, before?: string | null) => request<ConversationPage>('GET', `/api/conversations?${page(limit, before)}`),
  messages: (conversationId: string, limit: number, before?: string | null) =>
    request<MessagePage>('GET', `/api/conversation/${encodeURIComponent(conversationId)}/messages?${page(limit, before)}`),
  message: (id: string) => request<MessageWithTimeline>('GET', `/api/messages/${encodeURIComponent(id)}`),
  sendMessage: (body: SendMessageBody, idempotencyKey: string) =>
    request<SendMessageResponse>('POST', '/api/send_message', { body, idempotencyKey }),
  retry: (id: string, idempotencyKey: string) =>
    request<RetryResponse>('POST', `/api/messages/${encodeURIComponent(id)}/retry`, { idempotencyKey }),
  sendEmail: (body: SendEmailBody, idempotencyKey: string) =>
    request<SendEmailResponse>('POST', '/api/send_email', { body, idempotencyKey }),
  emails: (limit: number, before?: string | null) => request<EmailPage>('GET', `/api/emails?${page(limit, before)}`),
  email: (id: string) => request<EmailWithTimeline>('GET', `/api/emails/${encodeURIComponent(id)}`),
};
