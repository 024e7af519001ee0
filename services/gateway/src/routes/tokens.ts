/**
 * Personal API tokens (issue 18, docs/api.md "API tokens"): `hatch_pat_` + 256 random bits,
 * shown once at creation, stored as SHA-256, acting as their owner with the owner's role.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  CreatedToken,
  CreateTokenBody,
  ErrorBody,
  IdParams,
  PERSONAL_TOKEN_PREFIX,
  TokenList,
  TokenListQuery,
  UserItemParams,
  type ApiToken,
} from '@hatch/contracts';
import { findApiToken, findUser, insertApiToken, listApiTokens, revokeApiToken, type ApiTokenRow, type Db } from '@hatch/db';
import { randomSecret, requireRole, sha256, type Authenticator } from '../auth.js';
import { HttpError } from '../errors.js';
import type { Revocations } from '../revocations.js';
import type { Audit } from '../audit.js';
import { callerOf, uuidParam } from './session.js';

export interface TokenRouteDeps {
  db: Db;
  auth: Authenticator;
  revocations: Revocations;
  audit: Audit;
}

export function toApiToken(t: ApiTokenRow): ApiToken {
  return {
    id: t.id,
    user_id: t.user_id,
    name: t.name,
    created_at: t.created_at.toISOString(),
    last_used_at: t.last_used_at?.toISOString() ?? null,
    expires_at: t.expires_at?.toISOString() ?? null,
    revoked_at: t.revoked_at?.toISOString() ?? null,
  };
}

const ADMIN = { role: 'admin' as const };

export function tokenRoutes(instance: FastifyInstance, deps: TokenRouteDeps): void {
  const api = instance.withTypeProvider<TypeBoxTypeProvider>();

  api.post(
    '/tokens',
    {
      schema: {
        tags: ['tokens'],
        operationId: 'createToken',
        summary: 'Create a personal API token: the answer shows it, once',
        body: CreateTokenBody,
        response: { 201: CreatedToken, '4xx': ErrorBody },
      },
      config: { openapi: { errors: ['FORBIDDEN'] } },
    },
    async (req, reply) => {
      const c = callerOf(req);
      if (c.userId === null) throw new HttpError('FORBIDDEN', 'the bootstrap token owns no tokens: sign in as a person to create one');
      let expires: Date | null = null;
      if (req.body.expires_at !== undefined) {
        expires = new Date(req.body.expires_at);
        if (Number.isNaN(expires.getTime()) || expires.getTime() <= deps.auth.now()) {
          throw new HttpError('INVALID_REQUEST', 'body.expires_at must be a time in the future', {
            details: [{ field: 'body.expires_at', message: 'must be a time in the future' }],
          });
        }
      }
      const secret = randomSecret();
      const row = await insertApiToken(deps.db.db, {
        user_id: c.userId,
        name: req.body.name,
        token_hash: sha256(secret),
        created_at: new Date(deps.auth.now()),
        expires_at: expires,
      });
      await deps.audit({ kind: 'token_created', actor: c, subject: { user_id: c.userId, token_id: row.id }, address: req.ip });
      req.log.info({ tokenId: row.id }, 'API token created');
      return reply.code(201).send({ ...toApiToken(row), token: `${PERSONAL_TOKEN_PREFIX}${secret}` });
    },
  );

  api.get(
    '/tokens',
    {
      schema: {
        tags: ['tokens'],
        operationId: 'listTokens',
        summary: "The caller's API tokens (an admin: anyone's, with ?user_id=); never the tokens themselves",
        querystring: TokenListQuery,
        response: { 200: TokenList, '4xx': ErrorBody },
      },
      config: { openapi: { errors: ['FORBIDDEN'] } },
    },
    async (req) => {
      const c = callerOf(req);
      const userId = req.query.user_id?.toLowerCase() ?? c.userId;
      if (userId !== c.userId) requireRole(c, 'admin');
      return { tokens: userId === null ? [] : (await listApiTokens(deps.db.db, userId)).map(toApiToken) };
    },
  );

  /** Revokes token `id` (only `owner`'s when given): 404 when there is none; revoking twice is fine. */
  const revoke = async (req: FastifyRequest, id: string, owner: string | undefined) => {
    const c = callerOf(req);
    const row = await revokeApiToken(deps.db.db, id, new Date(deps.auth.now()), owner);
    if (!row) {
      const existing = await findApiToken(deps.db.db, id);
      // Revoking twice is fine (204); someone else's token is not found, as an unknown one is.
      if (!existing || (owner !== undefined && existing.user_id !== owner)) throw new HttpError('NOT_FOUND', 'no such token');
      return;
    }
    deps.revocations.publish({ kind: 'token', id: row.id, user_id: row.user_id });
    await deps.audit({ kind: 'token_revoked', actor: c, subject: { user_id: row.user_id, token_id: row.id }, address: req.ip });
  };

  api.delete(
    '/tokens/:id',
    {
      schema: {
        tags: ['tokens'],
        operationId: 'revokeToken',
        summary: 'Revoke an API token (one of the caller’s; an admin: anyone’s)',
        params: IdParams,
      },
      config: { openapi: { errors: ['NOT_FOUND'], responses: { 204: { type: 'null', description: 'revoked' } } } },
    },
    async (req, reply) => {
      const c = callerOf(req);
      const id = uuidParam(req.params.id, 'a token id');
      const owner = c.role === 'admin' ? undefined : (c.userId ?? undefined);
      if (c.role !== 'admin' && owner === undefined) throw new HttpError('NOT_FOUND', 'no such token');
      await revoke(req, id, owner);
      return reply.code(204).send();
    },
  );

  api.get(
    '/users/:id/tokens',
    {
      schema: {
        tags: ['people'],
        operationId: 'listUserTokens',
        summary: "A person's API tokens, revoked ones included (admin); never the tokens themselves",
        params: IdParams,
        response: { 200: TokenList, '4xx': ErrorBody },
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN', 'NOT_FOUND'] } },
    },
    async (req) => {
      const userId = uuidParam(req.params.id, 'a user id');
      if (!(await findUser(deps.db.db, userId))) throw new HttpError('NOT_FOUND', 'no such person');
      return { tokens: (await listApiTokens(deps.db.db, userId)).map(toApiToken) };
    },
  );

  api.delete(
    '/users/:id/tokens/:item_id',
    {
      schema: {
        tags: ['people'],
        operationId: 'revokeUserToken',
        summary: "Revoke one of a person's API tokens (admin): refused on every replica at once",
        params: UserItemParams,
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN', 'NOT_FOUND'], responses: { 204: { type: 'null', description: 'revoked' } } } },
    },
    async (req, reply) => {
      const userId = uuidParam(req.params.id, 'a user id');
      await revoke(req, uuidParam(req.params.item_id, 'a token id', 'params.item_id'), userId);
      return reply.code(204).send();
    },
  );
}
