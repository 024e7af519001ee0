/**
 * loadConfig(schema, env): the only place that reads the environment.
 *
 * Every property of the TypeBox object schema is one variable. A secret `NAME` may instead be
 * given as `NAME_FILE` (a path; the file's content, trailing newline trimmed, is the value), the
 * way Docker and Kubernetes mount secrets. Strings are coerced to the schema's number / integer /
 * boolean types; defaults apply; every missing or malformed setting is reported at once so an
 * operator fixes them in one go.
 */
import fs from 'node:fs';
import Type, { type Static, type TObject, type TSchema } from 'typebox';
import { Value } from 'typebox/value';

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

function schemaType(schema: TSchema): string | undefined {
  const s = schema as { type?: unknown; anyOf?: TSchema[] };
  if (typeof s.type === 'string') return s.type;
  if (Array.isArray(s.anyOf)) {
    for (const sub of s.anyOf) {
      const t = schemaType(sub);
      if (t && t !== 'null') return t;
    }
  }
  return undefined;
}

function coerce(raw: string, schema: TSchema): unknown {
  switch (schemaType(schema)) {
    case 'integer':
    case 'number': {
      const trimmed = raw.trim();
      if (!/^-?\d+(\.\d+)?$/.test(trimmed)) return raw; // left as a string: validation names it
      return Number(trimmed);
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      return raw;
    }
    default:
      return raw;
  }
}

function describe(schema: TSchema): string {
  const s = schema as Record<string, unknown> & { pattern?: string; format?: string };
  const type = schemaType(schema);
  const parts: string[] = [];
  if (type === 'integer') parts.push('an integer');
  else if (type === 'number') parts.push('a number');
  else if (type === 'boolean') parts.push('true or false');
  else if (Array.isArray(s.enum)) parts.push(`one of ${(s.enum as unknown[]).map((l) => JSON.stringify(l)).join(', ')}`);
  else if (s.pattern) parts.push(`matching ${String(s.pattern)}`);
  else if (s.format) parts.push(`a ${String(s.format)}`);
  else parts.push('a non-empty string');
  if (typeof s.minimum === 'number') parts.push(`>= ${s.minimum}`);
  if (typeof s.maximum === 'number') parts.push(`<= ${s.maximum}`);
  return parts.join(' ');
}

/** Reads, coerces, defaults and validates; throws ConfigError listing every problem. */
export function loadConfig<S extends TObject>(schema: S, env: Env = process.env): Readonly<Static<S>> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  const required = new Set<string>((schema as { required?: string[] }).required ?? []);
  for (const [key, prop] of Object.entries<TSchema>(schema.properties)) {
    let raw = env[key];
    const fileVar = env[`${key}_FILE`];
    if ((raw === undefined || raw === '') && fileVar) {
      try {
        raw = fs.readFileSync(fileVar, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        problems.push(`${key}_FILE: cannot read ${fileVar} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        continue;
      }
    }
    if (raw === undefined || raw === '') {
      const def = (prop as { default?: unknown }).default;
      if (def !== undefined) out[key] = def;
      else if (required.has(key)) problems.push(`${key}: missing (must be ${describe(prop)})`);
      continue;
    }
    const value = coerce(raw, prop);
    if (!Value.Check(prop, value)) {
      const shown = /SECRET|TOKEN|PASSWORD|KEY/.test(key) ? '<hidden>' : JSON.stringify(raw);
      problems.push(`${key}: must be ${describe(prop)} (got ${shown})`);
      continue;
    }
    out[key] = value;
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(out) as Readonly<Static<S>>;
}

/**
 * For a service's main.ts: the config, or one line per problem on stderr and exit code 1
 * (an operator reads these in `kubectl logs` / compose output, so no stack trace).
 */
export function loadConfigOrExit<S extends TObject>(
  service: string,
  schema: S,
  env: Env = process.env,
): Readonly<Static<S>> {
  try {
    return loadConfig(schema, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`${service}: config error: ${p}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/** DATABASE_URL, else built from POSTGRES_HOST/PORT/USER/PASSWORD/DB (contract), else local default. */
export function databaseUrlFrom(env: Env = process.env): string {
  const readSecret = (k: string): string | undefined => {
    if (env[k]) return env[k];
    const f = env[`${k}_FILE`];
    if (f) {
      try {
        return fs.readFileSync(f, 'utf8').replace(/\r?\n$/, '');
      } catch {
        return undefined; // reported by loadConfig when DATABASE_URL ends up malformed
      }
    }
    return undefined;
  };
  const direct = readSecret('DATABASE_URL');
  if (direct) return direct;
  if (env.POSTGRES_HOST) {
    const user = encodeURIComponent(env.POSTGRES_USER ?? 'postgres');
    const pw = readSecret('POSTGRES_PASSWORD');
    const auth = pw ? `${user}:${encodeURIComponent(pw)}` : user;
    return `postgres://${auth}@${env.POSTGRES_HOST}:${env.POSTGRES_PORT ?? '5432'}/${env.POSTGRES_DB ?? 'hatch'}`;
  }
  return 'postgres://localhost:5432/hatch';
}


/** pino levels, the one definition for every service's LOG_LEVEL. */
export const LogLevel = Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, { default: 'info' });

/** Settings every worker shares (contract configuration table); spread into its own schema. */
export function workerSettings(healthPortDefault: number) {
  return {
    DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://' }),
    DATABASE_POOL_MAX: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
    NATS_URL: Type.String({ pattern: '^(nats|tls|ws|wss)://', default: 'nats://127.0.0.1:4222' }),
    HATCH_NATS_PREFIX: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,30}$', default: 'HATCH' }),
    HEALTH_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: healthPortDefault }),
    LOG_LEVEL: LogLevel,
  };
}

/** The environment with DATABASE_URL resolved from its parts (contract default chain). */
export function envWithDatabaseUrl(env: Env = process.env): Env {
  return { ...env, DATABASE_URL: databaseUrlFrom(env) };
}
