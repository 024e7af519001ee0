/**
 * Team accounts (issue 18, docs/api.md "Accounts, roles, tokens and sessions"): the HTTP bodies
 * of sign-in, sessions, personal API tokens, users, invites and the audit trail, and the bus
 * message that tells every gateway replica a credential was revoked.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { Uuid } from './http.js';

const Timestamp = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);

export const ROLES = ['admin', 'agent'] as const;
export type Role = (typeof ROLES)[number];
export const RoleSchema = Type.Union([Type.Literal('admin'), Type.Literal('agent')], {
  description: 'admin: manages people, sessions, tokens and reads the audit log; agent: messages, emails and their own sessions and tokens',
});

/** The prefix of a personal API token (`hatch_pat_` + 43 base64url characters): greppable by secret scanners. */
export const PERSONAL_TOKEN_PREFIX = 'hatch_pat_';

// ---- sign-in ------------------------------------------------------------------------------

export const SessionBody = Type.Object(
  {
    email: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: 'with password: sign in as a person' })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    token: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        description: 'or the bootstrap API token (HATCH_API_TOKEN): signs in as "API", an admin',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'either email and password, or token',
    examples: [{ email: 'ada@example.com', password: 'a long passphrase' }, { token: 'change-me-to-a-long-random-token' }],
  },
);
export type SessionBody = Static<typeof SessionBody>;

/** Who the caller is: GET /api/session. */
export const Whoami = Type.Object({
  user: Nullable(Type.Object({ id: Uuid, name: Type.String(), email: Type.String() })),
  /** a person's name, or "API" for the bootstrap token */
  name: Type.String(),
  role: RoleSchema,
  credential: Type.Union([Type.Literal('session'), Type.Literal('token'), Type.Literal('bootstrap')]),
});
export type Whoami = Static<typeof Whoami>;

export const SessionInfo = Type.Object({
  id: Uuid,
  created_at: Timestamp,
  last_seen_at: Timestamp,
  /** the absolute expiry; the session also ends after HATCH_SESSION_IDLE_HOURS unused */
  expires_at: Timestamp,
  client: Nullable(Type.String()),
  address: Nullable(Type.String()),
  /** the session this request came with */
  current: Type.Boolean(),
});
export type SessionInfo = Static<typeof SessionInfo>;
export const SessionList = Type.Object({ sessions: Type.Array(SessionInfo) });
export type SessionList = Static<typeof SessionList>;

// ---- personal API tokens ------------------------------------------------------------------

export const CreateTokenBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'what it is for, e.g. "deploy script"' }),
    expires_at: Type.Optional(Timestamp),
  },
  { additionalProperties: false, examples: [{ name: 'deploy script' }] },
);
export type CreateTokenBody = Static<typeof CreateTokenBody>;

export const ApiToken = Type.Object({
  id: Uuid,
  user_id: Uuid,
  name: Type.String(),
  created_at: Timestamp,
  last_used_at: Nullable(Timestamp),
  expires_at: Nullable(Timestamp),
  revoked_at: Nullable(Timestamp),
});
export type ApiToken = Static<typeof ApiToken>;
export const CreatedToken = Type.Object({
  ...ApiToken.properties,
  token: Type.String({ description: 'the token itself: shown this once, stored only as a hash' }),
});
export type CreatedToken = Static<typeof CreatedToken>;
export const TokenList = Type.Object({ tokens: Type.Array(ApiToken) });
export type TokenList = Static<typeof TokenList>;
export const TokenListQuery = Type.Object({ user_id: Type.Optional(Uuid) }, { additionalProperties: false });

// ---- users and invites --------------------------------------------------------------------

export const User = Type.Object({
  id: Uuid,
  name: Type.String(),
  email: Type.String(),
  role: RoleSchema,
  created_at: Timestamp,
  disabled_at: Nullable(Timestamp),
  /** invited, has not set a password yet */
  pending: Type.Boolean(),
});
export type User = Static<typeof User>;
export const UserPage = Type.Object({ users: Type.Array(User), next_cursor: Nullable(Type.String()) });
export type UserPage = Static<typeof UserPage>;

export const CreateUserBody = Type.Object(
  {
    email: Type.String({ minLength: 3, maxLength: 320 }),
    role: RoleSchema,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'until the person sets their own' })),
  },
  { additionalProperties: false, examples: [{ email: 'bo@example.com', role: 'agent' }] },
);
export type CreateUserBody = Static<typeof CreateUserBody>;

export const UpdateUserBody = Type.Object(
  {
    role: Type.Optional(RoleSchema),
    disabled: Type.Optional(Type.Boolean()),
    email: Type.Optional(
      Type.String({ minLength: 3, maxLength: 320, description: 'a new email to sign in with (unique whatever its case: 409 when taken)' }),
    ),
  },
  { additionalProperties: false, minProperties: 1, examples: [{ disabled: true }, { role: 'admin' }, { email: 'ada@example.com' }] },
);
export type UpdateUserBody = Static<typeof UpdateUserBody>;

/** A one-time link (invite or password reset): `PUBLIC_URL/invite#<token>`. */
export const InviteLink = Type.Object({
  user: User,
  link: Type.String({ description: 'one-time: give it to the person; it is not shown again' }),
  expires_at: Timestamp,
});
export type InviteLink = Static<typeof InviteLink>;

export const AcceptInviteBody = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 200, description: 'the part of the link after #' }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    password: Type.String({ minLength: 1, maxLength: 4096, description: 'at least 12 characters, at most 1024 bytes, not the email' }),
  },
  { additionalProperties: false },
);
export type AcceptInviteBody = Static<typeof AcceptInviteBody>;

// ---- audit trail --------------------------------------------------------------------------

export const AUDIT_KINDS = [
  'sign_in',
  'sign_in_failed',
  'sign_out',
  'session_revoked',
  'token_created',
  'token_revoked',
  'user_invited',
  'user_created',
  'user_disabled',
  'user_enabled',
  'user_role_changed',
  'user_email_changed',
  'user_reset',
  // ids only (message_id + conversation_id, email_id), never a body (issue 18)
  'message_sent',
  'message_retried',
  'email_sent',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

export const AuditEvent = Type.Object({
  id: Type.String({ pattern: '^[0-9]+$' }),
  at: Timestamp,
  kind: Type.String(),
  actor_id: Nullable(Uuid),
  /** the actor as a person reads it: an email, "API" (the bootstrap token), or the email a failed sign-in tried */
  actor_label: Nullable(Type.String()),
  /** ids of what it was about: user_id, session_id, token_id, message_id, conversation_id, email_id */
  subject: Type.Record(Type.String(), Type.Unknown()),
  address: Nullable(Type.String()),
});
export type AuditEvent = Static<typeof AuditEvent>;
export const AuditPage = Type.Object({ events: Type.Array(AuditEvent), next_cursor: Nullable(Type.String()) });
export type AuditPage = Static<typeof AuditPage>;
export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    before: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    user_id: Type.Optional(Uuid),
    kind: Type.Optional(Type.String({ minLength: 1, maxLength: 60 })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

// ---- the bus ------------------------------------------------------------------------------

/**
 * Published on `names.subjects.authRevoked` (core NATS, not a stream: a replica that misses it
 * is bounded by its lookup cache's age anyway) when a session or token is revoked or a user
 * disabled: every gateway drops it from its cache and closes its SSE streams.
 */
export const AuthRevoked = Type.Object({
  kind: Type.Union([Type.Literal('session'), Type.Literal('token'), Type.Literal('user')]),
  /** the session's public id, the token's id, or the user's id */
  id: Uuid,
  user_id: Nullable(Uuid),
});
export type AuthRevoked = Static<typeof AuthRevoked>;
